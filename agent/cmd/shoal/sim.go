package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime/debug"
	"runtime/pprof"
	"strconv"
	"strings"
	"time"

	"github.com/shoal-dev/shoal/sim"
)

const simUsage = `Usage:
  shoal sim run SCENARIO.yaml [--json OUT] [--svg OUT] [--seed N] [--strategies a,b]
                             [--sequential] [--time-dilation strategy=N]

Runs a fleet of real agents in this process over simulated links (see
sim/scenarios/) once per strategy (the scenario's concurrent strategies at
the same time, the others one after another), and prints pull-time percentiles, origin
egress and peer traffic. Scenarios: sim/scenarios/*.yaml. Strategies:
origin-only, random-peer, hedged (least-used peer, hedged after the recent
p80; no probes) and shoal.
`

func runSim(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "run" {
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
			fmt.Fprint(stdout, simUsage)
			return nil
		}
		fmt.Fprint(stderr, simUsage)
		return errUsage
	}
	fs := flag.NewFlagSet("shoal sim run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, simUsage, "\nFlags:\n"); fs.PrintDefaults() }
	jsonOut := fs.String("json", "", "write the report as JSON to this file (- for stdout)")
	svgOut := fs.String("svg", "", "write the completion-time CDF plot as SVG to this file")
	seed := fs.Uint64("seed", 0, "seed for images and node choices (default: the scenario's)")
	only := fs.String("strategies", "", "comma-separated strategies to run (default: the scenario's)")
	sequential := fs.Bool("sequential", false, "run every strategy alone (ignore the scenario's concurrent list)")
	dilation := fs.String("time-dilation", "", "comma-separated strategy=N: run that strategy's fleet N times slower than simulated time (overrides the scenario's time_dilation)")
	dir := fs.String("dir", "", "directory for the agents' data (default: a new directory in /dev/shm, else the temporary directory)")
	logFile := fs.String("log", "", "write the agents' warnings and errors to this file")
	traceNode := fs.String("trace-node", "", "log this host's agent (or every agent: all) at debug level to the --log file")
	cpuProfile := fs.String("cpuprofile", "", "write a Go CPU profile of each strategy's schedule (after the fleet is up) to this file (FILE.<strategy> when several run, FILE.<a+b> for concurrent ones)")
	// Flags may come before or after the scenario file.
	rest := args[1:]
	var positional []string
	for {
		if err := fs.Parse(rest); err != nil {
			return flagErr(err)
		}
		if fs.NArg() == 0 {
			break
		}
		positional = append(positional, fs.Arg(0))
		rest = fs.Args()[1:]
	}
	if len(positional) != 1 {
		fs.Usage()
		return errUsage
	}
	sc, err := sim.Load(positional[0])
	if err != nil {
		return err
	}
	if *only != "" {
		sc.Strategies = strings.Split(*only, ",")
	}
	if *dilation != "" {
		if sc.TimeDilation, err = parseDilation(*dilation); err != nil {
			return err
		}
	}
	if *sequential {
		sc.Concurrent = nil
	}
	if *only != "" || *dilation != "" {
		if err := sc.Validate(); err != nil {
			return err
		}
	}
	plan, err := sim.NewPlan(sc, *seed)
	if err != nil {
		return err
	}
	if os.Getenv("GOGC") == "" {
		// A hundred agents share this process: collect garbage less often
		// (the heap is small; the collector's CPU is not).
		debug.SetGCPercent(simGCPercent)
	}
	opts := sim.Options{Dir: *dir, Progress: func(line string) { fmt.Fprintln(stderr, line) }}
	if *logFile != "" {
		f, err := os.Create(*logFile)
		if err != nil {
			return err
		}
		defer f.Close()
		opts.Log = slog.New(slog.NewTextHandler(f, &slog.HandlerOptions{Level: slog.LevelWarn}))
		opts.TraceNode = *traceNode
		opts.Trace = slog.New(slog.NewTextHandler(f, &slog.HandlerOptions{Level: slog.LevelDebug}))
	} else if *traceNode != "" {
		return fmt.Errorf("--trace-node needs --log FILE")
	}
	if *cpuProfile != "" {
		// One profile per strategy, of its schedule only (not the fleet's
		// start-up): OUT, or OUT.<strategy> when several strategies run.
		var prof *os.File
		opts.Phase = func(strategy string, start bool) {
			if !start {
				pprof.StopCPUProfile()
				if prof != nil {
					prof.Close()
				}
				return
			}
			name := *cpuProfile
			if len(sc.Strategies) > 1 {
				name += "." + strategy
			}
			f, err := os.Create(name)
			if err != nil {
				fmt.Fprintf(stderr, "cpu profile: %v\n", err)
				return
			}
			prof = f
			if err := pprof.StartCPUProfile(f); err != nil {
				fmt.Fprintf(stderr, "cpu profile: %v\n", err)
			}
		}
	}
	fmt.Fprintf(stderr, "sim %s: %d nodes, strategies %s, seed %d\n", sc.Name, sc.Nodes(), strings.Join(sc.Strategies, ", "), plan.Seed)
	start := time.Now()
	rep, err := sim.Run(ctx, plan, opts)
	if err != nil {
		return err
	}
	fmt.Fprintf(stderr, "sim %s: done in %s\n", sc.Name, time.Since(start).Round(time.Second))
	if err := rep.WriteTable(stdout); err != nil {
		return err
	}
	if *jsonOut != "" {
		b, err := json.MarshalIndent(rep, "", "  ")
		if err != nil {
			return err
		}
		b = append(b, '\n')
		if *jsonOut == "-" {
			_, err = stdout.Write(b)
		} else {
			err = os.WriteFile(*jsonOut, b, 0o644)
		}
		if err != nil {
			return fmt.Errorf("write json: %w", err)
		}
	}
	if *svgOut != "" {
		f, err := os.Create(*svgOut)
		if err != nil {
			return err
		}
		if err := errors.Join(rep.WriteSVG(f), f.Close()); err != nil {
			return fmt.Errorf("write svg: %w", err)
		}
	}
	return nil
}

// simGCPercent is the garbage collector's target for simulator runs unless
// GOGC is set.
const simGCPercent = 400

// parseDilation reads --time-dilation: strategy=N[,strategy=N...].
func parseDilation(s string) (map[string]int, error) {
	out := make(map[string]int)
	for _, kv := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(kv, "=")
		n, err := strconv.Atoi(v)
		if !ok || k == "" || err != nil {
			return nil, fmt.Errorf("--time-dilation %q: want strategy=N[,strategy=N...]", s)
		}
		out[k] = n
	}
	return out, nil
}
