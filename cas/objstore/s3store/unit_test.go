package s3store

import (
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/minio/minio-go/v7"
)

func TestParseURL(t *testing.T) {
	t.Parallel()
	tests := []struct {
		url, want string // want "" means an error
	}{
		{"s3://bucket", "s3://bucket?endpoint=s3.amazonaws.com&region=us-east-1"},
		{"s3://bucket/", "s3://bucket?endpoint=s3.amazonaws.com&region=us-east-1"},
		{"s3://bucket/a/b/?region=eu-west-1", "s3://bucket/a/b?endpoint=s3.amazonaws.com&region=eu-west-1"},
		{"s3://my-bucket/p?endpoint=127.0.0.1:9000&tls=false", "s3://my-bucket/p?endpoint=127.0.0.1:9000&region=us-east-1&tls=false"},
		{"s3://b.c.d?tls=true&endpoint=minio.local", "s3://b.c.d?endpoint=minio.local&region=us-east-1"},
		{"http://bucket", ""},
		{"s3://", ""},
		{"s3://Bucket", ""},
		{"s3://ab", ""},
		{"s3://bucket/a/../b", ""},
		{"s3://bucket?tls=maybe", ""},
		{"s3://bucket?endpoint=", ""},
		{"s3://bucket?endpoint=http://host", ""},
		{"s3://bucket?endpoint=host/path", ""},
		{"s3://bucket?endpoint=[::1]:9000", "s3://bucket?endpoint=[::1]:9000&region=us-east-1"},
		{"s3://bucket?region=a&region=b", ""},
		{"s3://bucket?secret_key=x", ""},
		{"s3://AKID:SECRET@bucket", ""},
		{"s3://bucket?%zz", ""},
	}
	for _, tt := range tests {
		loc, err := parseURL(tt.url)
		switch {
		case tt.want == "" && err == nil:
			t.Errorf("parseURL(%q) = %s, want an error", tt.url, loc)
		case tt.want != "" && err != nil:
			t.Errorf("parseURL(%q): %v", tt.url, err)
		case tt.want != "" && loc.String() != tt.want:
			t.Errorf("parseURL(%q) = %s, want %s", tt.url, loc, tt.want)
		}
		if err != nil && strings.Contains(err.Error(), "SECRET") {
			t.Errorf("parseURL(%q) error echoes the credentials: %v", tt.url, err)
		}
	}
}

// env is a fake environment for loadKeys.
type env map[string]string

func (e env) get(k string) string { return e[k] }

func TestLoadKeys(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	explicit := write("explicit", "[default]\naws_access_key_id=FILEID\naws_secret_access_key=FILESECRET\n"+
		"[profile ci]\naws_access_key_id = CIID\naws_secret_access_key = CISECRET\naws_session_token = CITOKEN\n")
	write("home/.aws/credentials", "; shared\n[default]\naws_access_key_id=HOMEID\naws_secret_access_key=HOMESECRET\n")
	shared := write("shared", "[default]\naws_access_key_id=SHAREDID\naws_secret_access_key=SHAREDSECRET\n")
	envKeys := env{"AWS_ACCESS_KEY_ID": "ENVID", "AWS_SECRET_ACCESS_KEY": "ENVSECRET", "AWS_SESSION_TOKEN": "ENVTOKEN", "HOME": filepath.Join(dir, "home")}

	tests := []struct {
		name    string
		opts    Options
		env     env
		want    keys
		source  string
		wantErr bool
	}{
		{"explicit file wins over the environment", Options{CredentialsFile: explicit}, envKeys,
			keys{"FILEID", "FILESECRET", ""}, "file " + explicit + " [default]", false},
		{"explicit file, profile from options", Options{CredentialsFile: explicit, Profile: "ci"}, nil,
			keys{"CIID", "CISECRET", "CITOKEN"}, "file " + explicit + " [ci]", false},
		{"explicit file, profile from AWS_PROFILE", Options{CredentialsFile: explicit}, env{"AWS_PROFILE": "ci"},
			keys{"CIID", "CISECRET", "CITOKEN"}, "file " + explicit + " [ci]", false},
		{"environment", Options{}, envKeys, keys{"ENVID", "ENVSECRET", "ENVTOKEN"}, "environment", false},
		{"shared file from AWS_SHARED_CREDENTIALS_FILE", Options{}, env{"AWS_SHARED_CREDENTIALS_FILE": shared},
			keys{"SHAREDID", "SHAREDSECRET", ""}, "file " + shared + " [default]", false},
		{"shared file in HOME", Options{}, env{"HOME": filepath.Join(dir, "home")},
			keys{"HOMEID", "HOMESECRET", ""}, "file " + filepath.Join(dir, "home/.aws/credentials") + " [default]", false},
		{"nothing: anonymous", Options{}, env{"HOME": filepath.Join(dir, "nowhere")}, keys{}, "anonymous", false},
		{"half a key pair in the environment", Options{}, env{"AWS_ACCESS_KEY_ID": "ENVID"}, keys{}, "", true},
		{"explicit file missing", Options{CredentialsFile: filepath.Join(dir, "missing")}, nil, keys{}, "", true},
		{"profile missing", Options{CredentialsFile: explicit, Profile: "absent"}, nil, keys{}, "", true},
		{"shared file lacks the profile", Options{}, env{"AWS_SHARED_CREDENTIALS_FILE": shared, "AWS_PROFILE": "x"}, keys{}, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, source, err := loadKeys(tt.opts, tt.env.get)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("loadKeys = %v from %s, want an error", got, source)
				}
				for _, secret := range []string{"FILESECRET", "CISECRET", "HOMESECRET", "SHAREDSECRET", "ENVSECRET"} {
					if strings.Contains(err.Error(), secret) {
						t.Errorf("error leaks a secret: %v", err)
					}
				}
				return
			}
			if err != nil || got != tt.want || source != tt.source {
				t.Errorf("loadKeys = %+v, %q, %v; want %+v, %q", got, source, err, tt.want, tt.source)
			}
		})
	}
}

func TestReadCredentialsFileErrors(t *testing.T) {
	t.Parallel()
	for _, content := range []string{
		"[default\naws_access_key_id=ID\naws_secret_access_key=TOPSECRET\n",
		"[default]\naws_access_key_id ID\naws_secret_access_key=TOPSECRET\n",
		"[default]\naws_secret_access_key=TOPSECRET\n",
	} {
		p := filepath.Join(t.TempDir(), "c")
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := readCredentialsFile(p, "default")
		if err == nil {
			t.Errorf("readCredentialsFile(%q) succeeded", content)
			continue
		}
		if strings.Contains(err.Error(), "TOPSECRET") {
			t.Errorf("error leaks the secret: %v", err)
		}
	}
	if s := (keys{"ID", "TOPSECRET", "TOKEN"}).String(); strings.Contains(s, "TOPSECRET") || strings.Contains(s, "TOKEN") {
		t.Errorf("keys.String() = %q shows a secret", s)
	}
}

func TestOptionsValidate(t *testing.T) {
	t.Parallel()
	if err := (Options{}).Validate(); err != nil {
		t.Errorf("zero Options: %v", err)
	}
	if err := DefaultOptions().Validate(); err != nil {
		t.Errorf("DefaultOptions: %v", err)
	}
	for _, o := range []Options{
		{Timeout: -1}, {PartSize: 1 << 20}, {Attempts: -1}, {Backoff: -1},
		{MaxBackoff: -1}, {BreakerThreshold: -1}, {BreakerCooldown: -1},
	} {
		if err := o.Validate(); err == nil {
			t.Errorf("Validate(%+v) succeeded", o)
		}
	}
	if got := (Options{Attempts: 7}).withDefaults(); got.Attempts != 7 || got.Timeout != DefaultOptions().Timeout || got.Logger == nil {
		t.Errorf("withDefaults = %+v", got)
	}
}

func TestSourceReadPart(t *testing.T) {
	t.Parallel()
	tests := []struct {
		data    string
		size    int64
		parts   []string // the parts read, with a buffer of 4 bytes
		wantErr bool     // the last readPart fails
	}{
		{"abcdefghij", 10, []string{"abcd", "efgh", "ij"}, false},
		{"abcdefgh", 8, []string{"abcd", "efgh"}, false},
		{"abcdefghij", -1, []string{"abcd", "efgh", "ij"}, false},
		{"abcdefgh", -1, []string{"abcd", "efgh", ""}, false},
		{"abc", 3, []string{"abc"}, false},
		{"", 0, []string{""}, false},
		{"", -1, []string{""}, false},
		{"abc", 2, []string{"ab"}, true},
		{"abcdefghij", 8, []string{"abcd", "efgh"}, true},
		{"abc", 4, []string{"abc"}, true},
		{"abcdefgh", 9, []string{"abcd", "efgh", ""}, true},
		{"x", 0, []string{""}, true},
	}
	for _, tt := range tests {
		src := &source{r: iotest.OneByteReader(strings.NewReader(tt.data)), size: tt.size}
		buf := make([]byte, 4)
		var got []string
		var err error
		for {
			var n int
			var last bool
			n, last, err = src.readPart(buf)
			got = append(got, string(buf[:n]))
			if last || err != nil {
				break
			}
		}
		if (err != nil) != tt.wantErr || !slices.Equal(got, tt.parts) {
			t.Errorf("%q declared %d: parts %q, error %v; want %q, error %v", tt.data, tt.size, got, err, tt.parts, tt.wantErr)
		}
	}
}

func TestClassify(t *testing.T) {
	t.Parallel()
	live := context.Background()
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	tests := []struct {
		name string
		ctx  context.Context
		err  error
		want outcome
	}{
		{"success", live, nil, answered},
		{"not found", live, minio.ErrorResponse{Code: "NoSuchKey", StatusCode: 404}, answered},
		{"access denied", live, minio.ErrorResponse{Code: "AccessDenied", StatusCode: 403}, answered},
		{"internal error", live, minio.ErrorResponse{Code: "InternalError", StatusCode: 500}, failed},
		{"slow down", live, minio.ErrorResponse{Code: "SlowDown", StatusCode: 503}, failed},
		{"too many requests", live, minio.ErrorResponse{StatusCode: http.StatusTooManyRequests}, failed},
		{"network", live, errors.New("dial tcp: connection refused"), failed},
		{"attempt timeout", live, context.DeadlineExceeded, failed},
		{"caller cancelled", cancelled, context.Canceled, neutral},
		{"client-side rejection", live, minio.ErrorResponse{Code: "InvalidArgument"}, neutral},
	}
	for _, tt := range tests {
		if got := classify(tt.ctx, tt.err); got != tt.want {
			t.Errorf("%s: classify = %d, want %d", tt.name, got, tt.want)
		}
	}
}

func TestBackoffIsBoundedAndJittered(t *testing.T) {
	t.Parallel()
	s := &Store{opts: Options{Backoff: 10 * time.Millisecond, MaxBackoff: 40 * time.Millisecond}}
	seen := map[time.Duration]bool{}
	for try := 1; try <= 40; try++ {
		d := s.backoff(try)
		ceiling := min(10*time.Millisecond<<(try-1), 40*time.Millisecond)
		if try > 30 {
			ceiling = 40 * time.Millisecond
		}
		if d < 0 || d >= ceiling {
			t.Errorf("backoff(%d) = %v, want in [0, %v)", try, d, ceiling)
		}
		seen[d] = true
	}
	if len(seen) < 10 {
		t.Errorf("backoff drew only %d distinct delays in 40 tries; want jitter", len(seen))
	}
}
