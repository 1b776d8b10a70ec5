package mirror

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// ErrExists is wrapped by WriteContainerd's refusals to replace a
// hosts.toml, or to shadow certificate files, that shoal did not write.
var ErrExists = errors.New("existing registry configuration kept")

// backupSuffix names the copy of a hosts.toml that Force replaced.
const backupSuffix = ".shoal-backup"

// action is what WriteContainerd does with one hosts.toml.
type action int

const (
	actCreate    action = iota // no hosts.toml yet
	actUnchanged               // identical content already there
	actReplace                 // Force: replace, keeping a backup
)

// plannedFile is one hosts.toml WriteContainerd intends to write.
type plannedFile struct {
	path    string
	content []byte
	act     action
	err     error // a refusal; nothing is written when any file has one
}

// WriteContainerd writes one hosts.toml per upstream under
// <root>/etc/containerd/certs.d/<namespace>/, pointing containerd at mirror.
// root is "/" on a real host.
//
// It never replaces what it did not write: an existing hosts.toml with
// other content, or Docker-style certificate files in the namespace
// directory (which containerd stops reading once a hosts.toml exists), make
// it refuse with an error wrapping ErrExists that names the file, unless
// opts.Force is set. A hosts.toml already holding the generated content is
// left alone, so running it twice is harmless. Every upstream is checked
// before anything is written, so a refusal leaves every file as it was.
//
// With dryRun it writes nothing and prints each file, with its path and
// what would happen, to out; it still returns the refusals a real run
// would. out receives one line per file otherwise; nil discards.
func WriteContainerd(root string, upstreams []string, mirror string, dryRun bool, out io.Writer, opts Options) error {
	if out == nil {
		out = io.Discard
	}
	if len(upstreams) == 0 {
		return fmt.Errorf("no upstream registries given (use %s to mirror every registry)", DefaultNamespace)
	}
	var plan []plannedFile
	seen := map[string]bool{}
	for _, up := range upstreams {
		ns, err := normalizeUpstream(up)
		if err != nil {
			return err
		}
		if seen[ns] {
			continue
		}
		seen[ns] = true
		p, err := planFile(root, ns, mirror, opts)
		if err != nil {
			return err
		}
		plan = append(plan, p)
	}

	var refusals []error
	for _, p := range plan {
		if p.err != nil {
			refusals = append(refusals, p.err)
		}
	}
	if dryRun {
		for _, p := range plan {
			fmt.Fprintf(out, "# %s (%s)\n", p.path, describe(p, true))
			if p.err == nil && p.act != actUnchanged {
				if _, err := out.Write(p.content); err != nil {
					return err
				}
			}
			fmt.Fprintln(out)
		}
		return errors.Join(refusals...)
	}
	if len(refusals) > 0 {
		return errors.Join(refusals...)
	}
	for _, p := range plan {
		if err := apply(p); err != nil {
			return err
		}
		fmt.Fprintf(out, "%s: %s\n", p.path, describe(p, false))
	}
	return nil
}

// describe says what happens (or would happen) to p.
func describe(p plannedFile, dryRun bool) string {
	switch {
	case p.err != nil:
		return "refused: " + p.err.Error()
	case p.act == actUnchanged:
		return "unchanged"
	case p.act == actReplace && dryRun:
		return "would replace; the current file would be kept as " + filepath.Base(p.path) + backupSuffix
	case p.act == actReplace:
		return "replaced; the previous file is kept as " + filepath.Base(p.path) + backupSuffix
	case dryRun:
		return "would create"
	default:
		return "written"
	}
}

// planFile works out where the hosts.toml for ns goes and whether writing
// it would replace anything.
func planFile(root, ns, mirror string, opts Options) (plannedFile, error) {
	dir, err := hostDir(root, ns)
	if err != nil {
		return plannedFile{}, err
	}
	p := plannedFile{path: filepath.Join(dir, "hosts.toml")}
	certs, certPaths, err := findCertFiles(dir)
	if err != nil {
		return plannedFile{}, err
	}
	// Certificate files are always carried over: a hosts.toml that names
	// them keeps them in use whether or not one existed before.
	if p.content, err = hostsTOML(ns, mirror, opts, certs); err != nil {
		return plannedFile{}, err
	}
	existing, err := os.ReadFile(p.path)
	switch {
	case err == nil && bytes.Equal(existing, p.content):
		p.act = actUnchanged
	case err == nil && opts.Force:
		p.act = actReplace
	case err == nil:
		p.err = fmt.Errorf("%s: %w: it differs from the one shoal would write; review it, or force to replace it (the current file is then kept as hosts.toml%s)", p.path, ErrExists, backupSuffix)
	case !errors.Is(err, fs.ErrNotExist):
		return plannedFile{}, fmt.Errorf("read %s: %w", p.path, err)
	case !certs.empty() && !opts.Force:
		p.err = fmt.Errorf("%s: %w: containerd reads certificate files only while the directory has no hosts.toml; force to write one that names them (%s)", certPaths[0], ErrExists, strings.Join(certPaths, ", "))
	default:
		p.act = actCreate
	}
	return p, nil
}

// hostDir is the directory containerd reads for ns: of the candidates it
// tries in order (for "host:port", first "host_port_" and then "host:port";
// containerd's config.hostPaths and hostDirectory), the first that exists,
// else "host:port" as the docs lay it out. Writing anywhere else could be
// shadowed by an existing directory.
func hostDir(root, ns string) (string, error) {
	base := filepath.Join(root, CertsDir)
	candidates := []string{filepath.Join(base, ns)}
	if i := strings.LastIndexByte(ns, ':'); i > 0 && !strings.HasSuffix(ns, "]") {
		candidates = slices.Insert(candidates, 0, filepath.Join(base, ns[:i]+"_"+ns[i+1:]+"_"))
	}
	for _, c := range candidates {
		fi, err := os.Stat(c)
		switch {
		case err == nil && fi.IsDir():
			return c, nil
		case err == nil:
			return "", fmt.Errorf("%s: %w: not a directory", c, ErrExists)
		case !errors.Is(err, fs.ErrNotExist):
			return "", fmt.Errorf("stat %s: %w", c, err)
		}
	}
	return candidates[len(candidates)-1], nil
}

// findCertFiles lists Docker-style certificate files in dir the way
// containerd's loadCertFiles does: *.crt are CAs, *.cert client
// certificates with their *.key. Names are relative to dir, as hosts.toml
// allows. It also returns their full paths for messages.
func findCertFiles(dir string) (certFiles, []string, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return certFiles{}, nil, nil
	}
	if err != nil {
		return certFiles{}, nil, fmt.Errorf("read %s: %w", dir, err)
	}
	var c certFiles
	var paths []string
	names := map[string]bool{}
	for _, e := range entries {
		names[e.Name()] = !e.IsDir()
	}
	for _, e := range entries { // ReadDir sorts by name
		name := e.Name()
		if e.IsDir() {
			continue
		}
		switch {
		case strings.HasSuffix(name, ".crt"):
			c.ca = append(c.ca, name)
			paths = append(paths, filepath.Join(dir, name))
		case strings.HasSuffix(name, ".cert"):
			key := strings.TrimSuffix(name, ".cert") + ".key"
			paths = append(paths, filepath.Join(dir, name))
			if !names[key] {
				key = ""
			} else {
				paths = append(paths, filepath.Join(dir, key))
			}
			c.client = append(c.client, [2]string{name, key})
		}
	}
	return c, paths, nil
}

// apply writes p atomically: the content goes to a temporary file in the
// same directory, is synced, and is then linked into place (which fails
// rather than replace a file that appeared since planning) or, for a
// forced replacement, renamed over the old file after backing it up.
func apply(p plannedFile) error {
	if p.act == actUnchanged {
		return nil
	}
	dir := filepath.Dir(p.path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	tmp, err := os.CreateTemp(dir, ".hosts.toml.shoal-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", p.path, err)
	}
	defer os.Remove(tmp.Name()) // after a link or rename, only the extra name goes
	if _, err := tmp.Write(p.content); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", p.path, err)
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", p.path, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", p.path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", p.path, err)
	}
	switch p.act {
	case actCreate:
		if err := os.Link(tmp.Name(), p.path); err != nil {
			if errors.Is(err, fs.ErrExist) {
				return fmt.Errorf("%s: %w: it appeared while shoal was writing", p.path, ErrExists)
			}
			return fmt.Errorf("write %s: %w", p.path, err)
		}
	case actReplace:
		// Keep the first pre-shoal file: an existing backup is not replaced.
		if err := os.Link(p.path, p.path+backupSuffix); err != nil && !errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("back up %s: %w", p.path, err)
		}
		if err := os.Rename(tmp.Name(), p.path); err != nil {
			return fmt.Errorf("write %s: %w", p.path, err)
		}
	}
	return syncDir(dir)
}

// syncDir makes a new directory entry durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}
