// Command shoal is the Shoal node agent and its tools.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/shoal-dev/shoal/agent"
	"github.com/shoal-dev/shoal/agent/config"
	"github.com/shoal-dev/shoal/agent/sdnotify"
)

const usage = `shoal: peer-to-peer container image distribution.

Usage:
  shoal agent [flags]     run the node agent (OCI registry on 127.0.0.1:5000)
  shoal status [flags]    show the local agent's state
  shoal lock run NAME [--limit N] -- CMD
                          run CMD while holding a fleet lock (rolling restarts)
  shoal configure containerd|docker [flags]
                          point containerd or docker at the agent as a mirror
  shoal sim run SCENARIO.yaml [--json OUT] [--svg OUT] [--seed N]
                          simulate a fleet rollout and compare strategies
  shoal version           print the version

Run "shoal COMMAND --help" for a command's flags.
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	switch args[0] {
	case "agent":
		err = runAgent(ctx, args[1:], stderr)
	case "status":
		err = runStatus(ctx, args[1:], stdout, stderr)
	case "lock":
		code, err := runLock(ctx, args[1:], stdout, stderr)
		if err != nil && !errors.Is(err, errUsage) {
			fmt.Fprintf(stderr, "shoal lock: %v\n", err)
			if code == 0 {
				code = 1
			}
		}
		return code
	case "configure":
		err = runConfigure(args[1:], stdout, stderr)
	case "sim":
		err = runSim(ctx, args[1:], stdout, stderr)
	case "version", "--version":
		fmt.Fprintf(stdout, "shoal %s\n", agent.Version)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
	default:
		fmt.Fprintf(stderr, "shoal: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errUsage):
		return 2
	}
	fmt.Fprintf(stderr, "shoal %s: %v\n", args[0], err)
	return 1
}

var errUsage = errors.New("usage")

func runAgent(ctx context.Context, args []string, stderr io.Writer) error {
	cfg, err := config.Load(args, os.Getenv, stderr)
	if err != nil {
		if errors.Is(err, config.ErrUsage) {
			return errUsage // the flag package printed the problem and usage
		}
		return err
	}
	level, _ := config.ParseLevel(cfg.Log.Level)
	levelVar := new(slog.LevelVar)
	levelVar.Set(level)
	hopts := &slog.HandlerOptions{Level: levelVar}
	var h slog.Handler = slog.NewJSONHandler(stderr, hopts)
	if cfg.Log.Format == "text" {
		h = slog.NewTextHandler(stderr, hopts)
	}
	a, err := agent.New(cfg, slog.New(h), agent.WithNotifier(sdnotify.FromEnv()), agent.WithLogLevel(levelVar))
	if err != nil {
		return err
	}
	return a.Run(ctx)
}
