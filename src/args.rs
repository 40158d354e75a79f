//! What every command's argument handling shares, and nothing else: the list of problems
//! a bad invocation gets back all at once, the exit statuses, and the value parsers that
//! must mean the same on every flag. A leaf: it imports nothing from the crate.

use std::fmt;
use std::time::Duration;

/// Exit status for bad flags or configuration (sysexits EX_USAGE).
pub const EXIT_USAGE: u8 = 64;
/// Exit status for input data that cannot be used (sysexits EX_DATAERR).
pub const EXIT_DATA: u8 = 65;
/// Exit status when the environment prevents running (cannot bind, cannot write files).
pub const EXIT_UNAVAILABLE: u8 = 69;

/// Every problem found in the arguments.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<String>);

impl ConfigErrors {
    pub fn push(&mut self, problem: impl Into<String>) {
        self.0.push(problem.into());
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `Err(self)` if anything was found.
    pub fn into_result(self) -> Result<(), ConfigErrors> {
        if self.0.is_empty() { Ok(()) } else { Err(self) }
    }

    /// Parse `raw` with `parse`; record `flag`'s problem if that fails.
    pub fn parse<T, E: fmt::Display>(
        &mut self,
        flag: &str,
        raw: &str,
        parse: impl FnOnce(&str) -> Result<T, E>,
    ) -> Option<T> {
        self.check(flag, raw, parse(raw))
    }

    /// Record `flag`'s problem, if `parsed` is one; keep the value otherwise.
    pub fn check<T, E: fmt::Display>(
        &mut self,
        flag: &str,
        raw: &str,
        parsed: Result<T, E>,
    ) -> Option<T> {
        parsed
            .map_err(|why| self.push(format!("{flag} {raw:?}: {why}")))
            .ok()
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "invalid configuration ({} problem{}):",
            self.0.len(),
            if self.0.len() == 1 { "" } else { "s" }
        )?;
        for problem in &self.0 {
            writeln!(f, "  - {problem}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// The one duration syntax of every flag: `5s`, `500ms`, `2m`, `1h 30m`, or a bare number
/// of seconds (`600`), at most 24 hours. Usable as a clap `value_parser` too.
pub fn duration(raw: &str) -> Result<Duration, String> {
    let raw = raw.trim();
    let parsed = match raw.parse::<u64>() {
        Ok(secs) => Ok(Duration::from_secs(secs)),
        Err(_) => humantime::parse_duration(raw),
    };
    match parsed {
        Ok(d) if d <= Duration::from_secs(24 * 3600) => Ok(d),
        _ => Err("expected a duration such as 5s, 500ms, 2m or 600 (seconds), at most 24h".into()),
    }
}

/// A whole number in `min..=max`.
pub fn number_in(raw: &str, min: u64, max: u64) -> Result<u64, String> {
    match raw.trim().parse::<u64>() {
        Ok(v) if (min..=max).contains(&v) => Ok(v),
        _ => Err(format!("expected a whole number from {min} to {max}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_accept_units_and_bare_seconds() {
        assert_eq!(duration("600"), Ok(Duration::from_secs(600)));
        assert_eq!(duration(" 5s "), Ok(Duration::from_secs(5)));
        assert_eq!(duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(duration("1h 30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(duration("24h"), Ok(Duration::from_secs(86_400)));
        for bad in ["", "soon", "25h", "-1", "5 parsecs"] {
            assert!(duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn problems_are_collected_with_the_flag_and_the_value() {
        let mut problems = ConfigErrors::default();
        assert_eq!(problems.check("--a", "1", number_in("1", 1, 2)), Some(1));
        assert_eq!(problems.check("--b", "x", duration("x")), None);
        assert_eq!(problems.0.len(), 1);
        assert!(
            problems.to_string().starts_with(
                "invalid configuration (1 problem):\n  - --b \"x\": expected a duration"
            )
        );
        assert!(problems.into_result().is_err());
    }
}
