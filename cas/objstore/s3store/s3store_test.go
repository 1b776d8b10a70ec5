package s3store_test

import (
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/cas/objstore"
	"github.com/shoal-dev/shoal/cas/objstore/objstoretest"
	"github.com/shoal-dev/shoal/cas/objstore/s3store"
	"github.com/shoal-dev/shoal/cas/objstore/s3store/s3test"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// credentialsFile writes the gateway's root keys in the AWS
// shared-credentials format under profile and returns the file's path.
func credentialsFile(t *testing.T, profile string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "credentials")
	content := "# test keys\n[other]\naws_access_key_id = wrong\naws_secret_access_key = wrong\n\n" +
		"[" + profile + "]\naws_access_key_id = " + s3test.AccessKey + "\naws_secret_access_key=" + s3test.SecretKey + "\n"
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// writeFile writes content to a new file and returns its path.
func writeFile(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// testOptions are fast settings for tests, with credentials from a file.
func testOptions(t *testing.T) s3store.Options {
	return s3store.Options{
		CredentialsFile: credentialsFile(t, "shoal"),
		Profile:         "shoal",
		Logger:          slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Timeout:         5 * time.Second,
		Backoff:         10 * time.Millisecond,
		MaxBackoff:      50 * time.Millisecond,
	}
}

// newStore opens a store on a fresh bucket of g and closes it when the
// test ends.
func newStore(t *testing.T, g *s3test.Gateway, prefix string, opts s3store.Options) *s3store.Store {
	t.Helper()
	s, err := s3store.New(t.Context(), g.URL(g.Bucket(t), prefix), opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// testWriter sends log lines to the test log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

func TestConformance(t *testing.T) {
	t.Parallel()
	g := s3test.Start(t)
	for _, prefix := range []string{"", "shoal/origin"} {
		t.Run("prefix="+prefix, func(t *testing.T) {
			t.Parallel()
			objstoretest.Run(t, func(t *testing.T) objstore.Store {
				opts := testOptions(t)
				opts.Logger = nil
				return newStore(t, g, prefix, opts)
			})
		})
	}
}

// TestPrefixIsolation checks that a store sees only the keys under its
// prefix, and that they are stored as <prefix>/<key>.
func TestPrefixIsolation(t *testing.T) {
	t.Parallel()
	g := s3test.Start(t)
	bucket := g.Bucket(t)
	ctx := t.Context()
	open := func(prefix string) *s3store.Store {
		s, err := s3store.New(ctx, g.URL(bucket, prefix), testOptions(t))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	whole, inner := open(""), open("team/origin")
	if err := inner.Put(ctx, "blobs/x", strings.NewReader("x"), 1); err != nil {
		t.Fatal(err)
	}
	if err := whole.Put(ctx, "team/originals", strings.NewReader("y"), 1); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(g.Root(), bucket, "team", "origin", "blobs", "x")); err != nil {
		t.Errorf("object not stored under the prefix: %v", err)
	}
	var keys []string
	for k, err := range inner.List(ctx, "") {
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, k)
	}
	if len(keys) != 1 || keys[0] != "blobs/x" {
		t.Errorf("List under the prefix = %q, want [blobs/x]", keys)
	}
}

func TestNewMissingBucket(t *testing.T) {
	t.Parallel()
	g := s3test.Start(t)
	_, err := s3store.New(t.Context(), g.URL("no-such-bucket", ""), testOptions(t))
	if err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Errorf("New on a missing bucket = %v, want a does-not-exist error", err)
	}
}

// TestCredentialsFromEnvironment cannot run in parallel: it sets the
// process environment.
func TestCredentialsFromEnvironment(t *testing.T) {
	g := s3test.Start(t)
	t.Setenv("AWS_ACCESS_KEY_ID", s3test.AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", s3test.SecretKey)
	t.Setenv("AWS_SESSION_TOKEN", "")
	t.Setenv("AWS_PROFILE", "")
	var logs strings.Builder
	opts := s3store.Options{Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	s := newStore(t, g, "", opts)
	roundTrip(t, s)
	if !strings.Contains(logs.String(), "credentials=environment") {
		t.Errorf("logs do not say the keys came from the environment:\n%s", logs.String())
	}
	checkNoSecrets(t, s.String()+logs.String())

	// Wrong keys from the environment are refused by the service.
	t.Setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret")
	_, err := s3store.New(t.Context(), g.URL(g.Bucket(t), ""), s3store.Options{})
	if err == nil {
		t.Fatal("New with a wrong secret succeeded")
	}
	if errors.Is(err, objstore.ErrUnavailable) {
		t.Errorf("a refused signature maps to ErrUnavailable: %v", err)
	}
	checkNoSecrets(t, err.Error())
}

func TestCredentialsFromFile(t *testing.T) {
	t.Parallel()
	g := s3test.Start(t)
	var logs strings.Builder
	opts := testOptions(t)
	opts.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	s := newStore(t, g, "", opts)
	roundTrip(t, s)
	if !strings.Contains(logs.String(), opts.CredentialsFile) {
		t.Errorf("logs do not name the credentials file:\n%s", logs.String())
	}
	checkNoSecrets(t, s.String()+logs.String())

	// A profile the file lacks, and a file that does not exist, fail New.
	for _, o := range []s3store.Options{
		{CredentialsFile: opts.CredentialsFile, Profile: "absent"},
		{CredentialsFile: filepath.Join(t.TempDir(), "missing")},
	} {
		if _, err := s3store.New(t.Context(), g.URL(g.Bucket(t), ""), o); err == nil {
			t.Errorf("New with %+v succeeded", o)
		} else {
			checkNoSecrets(t, err.Error())
		}
	}
}

// roundTrip puts, reads back and deletes an object.
func roundTrip(t *testing.T, s *s3store.Store) {
	t.Helper()
	ctx := t.Context()
	if err := s.Put(ctx, "greeting", strings.NewReader("hello"), 5); err != nil {
		t.Fatalf("Put: %v", err)
	}
	rc, err := s.Get(ctx, "greeting", 0, -1)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	defer rc.Close()
	if b, err := io.ReadAll(rc); err != nil || string(b) != "hello" {
		t.Errorf("Get = %q, %v; want hello", b, err)
	}
	if err := s.Delete(ctx, "greeting"); err != nil {
		t.Errorf("Delete: %v", err)
	}
}

// checkNoSecrets fails if text contains the secret key.
func checkNoSecrets(t *testing.T, text string) {
	t.Helper()
	if strings.Contains(text, s3test.SecretKey) || strings.Contains(text, "not-the-secret") {
		t.Errorf("secret key leaked into %q", text)
	}
}
