package upstream

import "strings"

// challenge is one parsed WWW-Authenticate challenge (RFC 7235 §4.1), such
// as `Bearer realm="https://auth.docker.io/token",service="registry.docker.io"`.
type challenge struct {
	scheme string            // lower case: "bearer", "basic", …
	params map[string]string // keys lower case, values unquoted
}

// pickChallenge returns the Bearer challenge among the WWW-Authenticate
// header values, else the Basic one, else nil.
func pickChallenge(values []string) *challenge {
	var basic *challenge
	for _, v := range values {
		for _, ch := range parseChallenges(v) {
			switch ch.scheme {
			case "bearer":
				if ch.params["realm"] != "" {
					return &ch
				}
			case "basic":
				if basic == nil {
					basic = &ch
				}
			}
		}
	}
	return basic
}

// parseChallenges parses one WWW-Authenticate header value, which may hold
// several comma-separated challenges, each a scheme followed by
// comma-separated auth-params (name=token or name="quoted string").
func parseChallenges(v string) []challenge {
	var out []challenge
	s := v
	for {
		s = strings.TrimLeft(s, " \t,")
		if s == "" {
			return out
		}
		n := tokenLen(s)
		if n == 0 {
			return out // malformed: stop rather than guess
		}
		name := s[:n]
		rest := strings.TrimLeft(s[n:], " \t")
		if strings.HasPrefix(rest, "=") && len(out) > 0 {
			var val string
			val, s = readParamValue(strings.TrimLeft(rest[1:], " \t"))
			out[len(out)-1].params[strings.ToLower(name)] = val
			continue
		}
		out = append(out, challenge{scheme: strings.ToLower(name), params: map[string]string{}})
		s = rest
	}
}

// tokenLen returns the length of the token at the start of s.
func tokenLen(s string) int {
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case ' ', '\t', ',', '=', '"':
			return i
		}
	}
	return len(s)
}

// readParamValue reads a token or a quoted string (with backslash escapes)
// from the start of s and returns it and the rest of s.
func readParamValue(s string) (string, string) {
	if !strings.HasPrefix(s, `"`) {
		n := strings.IndexAny(s, ", \t")
		if n < 0 {
			return s, ""
		}
		return s[:n], s[n:]
	}
	var b strings.Builder
	for i := 1; i < len(s); i++ {
		switch s[i] {
		case '\\':
			if i+1 < len(s) {
				i++
				b.WriteByte(s[i])
			}
		case '"':
			return b.String(), s[i+1:]
		default:
			b.WriteByte(s[i])
		}
	}
	return b.String(), "" // unterminated quote: take what there is
}
