// Package probe holds what the Go client programs share, whatever SDK they link: reading
// credentials from many goroutines at once (the single-flight check), the module versions
// actually linked in, and the one-line JSON result the test harness parses.
//
// It is its own module, required by ../go and ../go-legacy through a `replace` to this
// directory: a module can require one version of aws-sdk-go only, so the 2018 client
// lives in a module of its own, and this code is written once for both.
package probe

import (
	"encoding/json"
	"fmt"
	"os"
	"runtime/debug"
	"strconv"
	"sync"
)

// Result is what a client program prints, one JSON object on stdout. The harness puts it
// verbatim into failure messages, so a failure names the SDK, its version and what it got.
type Result struct {
	SDK          string `json:"sdk"`
	Version      string `json:"version"`
	Entry        string `json:"entry"`
	Provider     string `json:"provider,omitempty"`
	AccessKeyID  string `json:"access_key_id,omitempty"`
	Account      string `json:"account,omitempty"`
	UserID       string `json:"user_id,omitempty"`
	Arn          string `json:"arn,omitempty"`
	Reads        int    `json:"reads"`
	DistinctKeys int    `json:"distinct_keys"`
	Error        string `json:"error,omitempty"`
}

// ModuleVersion is the version of module `path` linked into this binary ("?" if absent).
func ModuleVersion(path string) string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "?"
	}
	for _, dep := range info.Deps {
		if dep.Path == path {
			if dep.Replace != nil {
				return dep.Replace.Version
			}
			return dep.Version
		}
	}
	return "?"
}

// EnvInt reads a positive integer from the environment, or def.
func EnvInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// ReadConcurrently calls read `readers*reads` times from `readers` goroutines started
// together, and returns the number of successful reads, the distinct access key ids seen,
// and the first error.
func ReadConcurrently(readers, reads int, read func() (string, error)) (int, int, error) {
	var (
		mu       sync.Mutex
		ok       int
		keys     = map[string]bool{}
		firstErr error
		start    = make(chan struct{})
		wg       sync.WaitGroup
	)
	for i := 0; i < readers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			for j := 0; j < reads; j++ {
				key, err := read()
				mu.Lock()
				if err != nil {
					if firstErr == nil {
						firstErr = err
					}
				} else {
					ok++
					keys[key] = true
				}
				mu.Unlock()
			}
		}()
	}
	close(start)
	wg.Wait()
	return ok, len(keys), firstErr
}

// Emit prints r as one JSON line and exits 0, or 1 if r carries an error.
func Emit(r Result) {
	out, err := json.Marshal(r)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	fmt.Println(string(out))
	if r.Error != "" {
		os.Exit(1)
	}
	os.Exit(0)
}
