package deploy

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// fakeBinary writes a stand-in for the shoal binary that answers
// `shoal version`, as install.sh checks it runs before installing it.
func fakeBinary(t *testing.T, dir, version string) string {
	t.Helper()
	p := filepath.Join(dir, "shoal")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	script := "#!/bin/sh\n[ \"$1\" = version ] && echo 'shoal " + version + "'\n"
	if err := os.WriteFile(p, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

// runInstall runs install.sh from dir with args, always into a --root.
func runInstall(t *testing.T, dir string, args ...string) (string, error) {
	t.Helper()
	script, err := filepath.Abs("install.sh")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("bash", append([]string{script}, args...)...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func mustInstall(t *testing.T, dir string, args ...string) string {
	t.Helper()
	out, err := runInstall(t, dir, args...)
	if err != nil {
		t.Fatalf("install.sh %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

func exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}

func fileMode(t *testing.T, path string) os.FileMode {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode().Perm()
}

func TestInstallScriptRoundTrip(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("bash not installed")
	}
	tmp := t.TempDir()
	root := filepath.Join(tmp, "root")
	if err := os.Mkdir(root, 0o755); err != nil {
		t.Fatal(err)
	}
	bin := fakeBinary(t, filepath.Join(tmp, "build"), "v1")
	var (
		binPath    = filepath.Join(root, "usr/local/bin/shoal")
		unitPath   = filepath.Join(root, "etc/systemd/system/shoal.service")
		configPath = filepath.Join(root, "etc/shoal/config.yaml")
	)

	out := mustInstall(t, tmp, "--root", root, bin)
	for _, c := range []struct {
		path string
		mode os.FileMode
		src  string
	}{{binPath, 0o755, bin}, {unitPath, 0o644, unitFile}, {configPath, 0o644, "shoal.yaml"}} {
		if m := fileMode(t, c.path); m != c.mode {
			t.Errorf("%s: mode %v, want %v", c.path, m, c.mode)
		}
		got, _ := os.ReadFile(c.path)
		want, _ := os.ReadFile(c.src)
		if string(got) != string(want) {
			t.Errorf("%s differs from %s", c.path, c.src)
		}
	}
	if !strings.Contains(out, "not running systemctl") {
		t.Errorf("output does not say systemctl was skipped:\n%s", out)
	}

	// Idempotent: a second run changes nothing and says so.
	out = mustInstall(t, tmp, "--root", root, bin)
	for _, p := range []string{binPath, unitPath} {
		if !strings.Contains(out, "unchanged "+p) {
			t.Errorf("second run did not report %s unchanged:\n%s", p, out)
		}
	}
	if !strings.Contains(out, "kept existing "+configPath) {
		t.Errorf("second run did not keep the config:\n%s", out)
	}

	// An edited config survives an upgrade; the new binary replaces the old.
	const edited = "log:\n  level: debug\n"
	if err := os.WriteFile(configPath, []byte(edited), 0o600); err != nil {
		t.Fatal(err)
	}
	bin2 := fakeBinary(t, filepath.Join(tmp, "build2"), "v2")
	out = mustInstall(t, tmp, "--root", root, bin2)
	if got, _ := os.ReadFile(configPath); string(got) != edited {
		t.Errorf("upgrade overwrote the edited config:\n%s", got)
	}
	if got, _ := os.ReadFile(binPath); !strings.Contains(string(got), "v2") || !strings.Contains(out, "installed "+binPath) {
		t.Errorf("upgrade did not replace the binary:\n%s", out)
	}
	if entries, _ := os.ReadDir(filepath.Dir(binPath)); len(entries) != 1 {
		t.Errorf("stray files next to the binary: %v", entries)
	}

	// Uninstall keeps config and state; purge removes them.
	state := filepath.Join(root, "var/lib/private/shoal/blobs")
	if err := os.MkdirAll(state, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("private/shoal", filepath.Join(root, "var/lib/shoal")); err != nil {
		t.Fatal(err)
	}
	mustInstall(t, tmp, "--root", root, "--uninstall")
	for _, p := range []string{binPath, unitPath} {
		if exists(p) {
			t.Errorf("--uninstall left %s", p)
		}
	}
	for _, p := range []string{configPath, state, filepath.Join(root, "var/lib/shoal")} {
		if !exists(p) {
			t.Errorf("--uninstall removed %s", p)
		}
	}
	mustInstall(t, tmp, "--root", root, "--uninstall") // idempotent too
	mustInstall(t, tmp, "--root", root, "--uninstall", "--purge")
	for _, p := range []string{filepath.Join(root, "etc/shoal"), filepath.Join(root, "var/lib/shoal"), filepath.Join(root, "var/lib/private/shoal")} {
		if exists(p) {
			t.Errorf("--purge left %s", p)
		}
	}
	if !exists(filepath.Join(root, "var/lib")) {
		t.Error("--purge removed more than shoal's directories")
	}
}

func TestInstallScriptPrefixAndDefaultBinary(t *testing.T) {
	t.Parallel()
	tmp := t.TempDir()
	root := filepath.Join(tmp, "root")
	if err := os.Mkdir(root, 0o755); err != nil {
		t.Fatal(err)
	}
	fakeBinary(t, filepath.Join(tmp, "bin"), "v1") // ./bin/shoal, the default
	mustInstall(t, tmp, "--root="+root, "--prefix=/opt/shoal")
	if !exists(filepath.Join(root, "opt/shoal/bin/shoal")) {
		t.Error("binary not under the prefix")
	}
	unit, err := os.ReadFile(filepath.Join(root, "etc/systemd/system/shoal.service"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(unit), "\nExecStart=/opt/shoal/bin/shoal agent --config /etc/shoal/config.yaml\n") {
		t.Errorf("ExecStart does not follow --prefix:\n%s", unit)
	}
}

func TestInstallScriptRefuses(t *testing.T) {
	t.Parallel()
	tmp := t.TempDir()
	broken := filepath.Join(tmp, "broken")
	if err := os.WriteFile(broken, []byte("#!/bin/sh\nexit 1\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string // after --root ROOT
		want string
	}{
		{"no binary anywhere", nil, "no binary given"},
		{"binary does not run", []string{broken}, "does not run"},
		{"missing binary", []string{filepath.Join(tmp, "nope")}, "not an executable"},
		{"two binaries", []string{broken, broken}, "more than one binary"},
		{"purge without uninstall", []string{"--purge"}, "--purge only goes with --uninstall"},
		{"relative prefix", []string{"--prefix", "usr"}, "absolute"},
		{"unknown option", []string{"--frobnicate"}, "unknown option"},
		{"root not a directory", []string{"--root", filepath.Join(tmp, "nope")}, "not a directory"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir() // no ./bin/shoal here
			root := filepath.Join(dir, "root")
			if err := os.Mkdir(root, 0o755); err != nil {
				t.Fatal(err)
			}
			args := append([]string{"--root", root}, tt.args...)
			out, err := runInstall(t, dir, args...)
			if err == nil || !strings.Contains(out, tt.want) {
				t.Errorf("install.sh %v: err %v, output:\n%s\nwant failure mentioning %q", args, err, out, tt.want)
			}
			if entries, _ := os.ReadDir(root); len(entries) != 0 {
				t.Errorf("refused run wrote into the root: %v", entries)
			}
		})
	}
}
