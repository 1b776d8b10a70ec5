package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/shoal-dev/shoal/agent/mirror"
)

const configureUsage = `Usage:
  shoal configure containerd [flags]   write /etc/containerd/certs.d/<host>/hosts.toml mirror entries
  shoal configure docker [flags]       print (or merge) registry-mirrors for /etc/docker/daemon.json
`

func runConfigure(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, configureUsage)
		return errUsage
	}
	switch args[0] {
	case "containerd":
		return configureContainerd(args[1:], stdout, stderr)
	case "docker":
		return configureDocker(args[1:], stdout, stderr)
	case "-h", "--help", "help":
		fmt.Fprint(stdout, configureUsage)
		return nil
	}
	fmt.Fprintf(stderr, "shoal configure: unknown target %q\n\n%s", args[0], configureUsage)
	return errUsage
}

// repeated is a repeatable string flag.
type repeated []string

func (r *repeated) String() string     { return strings.Join(*r, ",") }
func (r *repeated) Set(v string) error { *r = append(*r, v); return nil }

func configureContainerd(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("shoal configure containerd", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var upstreams repeated
	fs.Var(&upstreams, "registry", "upstream registry host to mirror, repeatable (default: _default, every registry)")
	mirrorURL := fs.String("mirror", mirror.DefaultMirror, "the agent's registry URL")
	root := fs.String("root", "/", "filesystem root to write under (for images and tests)")
	dryRun := fs.Bool("dry-run", false, "print the files instead of writing them")
	force := fs.Bool("force", false, "replace a different existing hosts.toml (kept as hosts.toml.shoal-backup)")
	configTOML := fs.String("containerd-config", "/etc/containerd/config.toml", "containerd config to check for settings that disable mirrors")
	if err := fs.Parse(args); err != nil {
		return flagErr(err)
	}
	if len(upstreams) == 0 {
		upstreams = repeated{mirror.DefaultNamespace}
	}
	if err := mirror.WriteContainerd(*root, upstreams, *mirrorURL, *dryRun, stdout, mirror.Options{Force: *force}); err != nil {
		return err
	}
	cfgPath := filepath.Join(*root, strings.TrimPrefix(*configTOML, "/"))
	raw, err := os.ReadFile(cfgPath)
	switch {
	case errors.Is(err, os.ErrNotExist):
		fmt.Fprintf(stderr, "note: %s not found; containerd must have config_path = %q for the CRI registry\n", cfgPath, "/etc/containerd/certs.d")
	case err != nil:
		return fmt.Errorf("read %s: %w", cfgPath, err)
	default:
		for _, w := range mirror.CheckContainerdConfig(raw) {
			kind := "warning"
			if w.Advisory {
				kind = "advice"
			}
			fmt.Fprintf(stderr, "%s: %s: %s\n  fix in %s:\n%s\n", kind, w.Key, w.Message, cfgPath, indent(w.Fix))
		}
	}
	return nil
}

func configureDocker(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("shoal configure docker", flag.ContinueOnError)
	fs.SetOutput(stderr)
	mirrorURL := fs.String("mirror", mirror.DefaultMirror, "the agent's registry URL")
	daemonJSON := fs.String("daemon-json", "/etc/docker/daemon.json", "docker daemon.json to merge into")
	write := fs.Bool("write", false, "write the merged file (default: print it)")
	if err := fs.Parse(args); err != nil {
		return flagErr(err)
	}
	existing, err := os.ReadFile(*daemonJSON)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("read %s: %w", *daemonJSON, err)
	}
	merged, err := mirror.DockerDaemonJSON(existing, *mirrorURL)
	if err != nil {
		return fmt.Errorf("%s: %w", *daemonJSON, err)
	}
	if !*write {
		_, err := stdout.Write(merged)
		return err
	}
	tmp := *daemonJSON + ".shoal-tmp"
	if err := os.WriteFile(tmp, merged, 0o644); err != nil {
		return fmt.Errorf("write %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, *daemonJSON); err != nil {
		return fmt.Errorf("replace %s: %w", *daemonJSON, err)
	}
	fmt.Fprintf(stderr, "wrote %s; restart docker to apply\n", *daemonJSON)
	return nil
}

func flagErr(err error) error {
	if errors.Is(err, flag.ErrHelp) {
		return err
	}
	return errUsage
}

func indent(s string) string {
	return "    " + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n    ")
}
