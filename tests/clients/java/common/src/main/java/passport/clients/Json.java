package passport.clients;

import java.util.Map;

/** A flat JSON object of strings and numbers: all the client programs print. */
public final class Json {
    private Json() {}

    public static String object(Map<String, Object> fields) {
        StringBuilder out = new StringBuilder("{");
        for (Map.Entry<String, Object> e : fields.entrySet()) {
            if (out.length() > 1) out.append(',');
            out.append(string(e.getKey())).append(':');
            Object v = e.getValue();
            out.append(v instanceof Number ? v.toString() : string(String.valueOf(v)));
        }
        return out.append('}').toString();
    }

    public static String string(String s) {
        StringBuilder out = new StringBuilder("\"");
        for (char c : s.toCharArray()) {
            switch (c) {
                case '"': out.append("\\\""); break;
                case '\\': out.append("\\\\"); break;
                case '\n': out.append("\\n"); break;
                case '\r': out.append("\\r"); break;
                case '\t': out.append("\\t"); break;
                default:
                    if (c < 0x20) out.append(String.format("\\u%04x", (int) c));
                    else out.append(c);
            }
        }
        return out.append('"').toString();
    }
}
