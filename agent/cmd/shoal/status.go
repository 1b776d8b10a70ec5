package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/shoal-dev/shoal/agent"
)

func runStatus(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("shoal status", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("admin-addr", envOr("SHOAL_ADMIN_ADDR", "127.0.0.1:5001"), "the agent's admin address")
	asJSON := fs.Bool("json", false, "print the raw JSON status")
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return err
		}
		return errUsage
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+*addr+"/status", nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("cannot reach the agent's admin API at %s (is `shoal agent` running?): %w", *addr, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("admin API at %s answered %s", *addr, resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return fmt.Errorf("read status: %w", err)
	}
	if *asJSON {
		_, err := stdout.Write(body)
		return err
	}
	var s agent.Status
	if err := json.Unmarshal(body, &s); err != nil {
		return fmt.Errorf("decode status: %w", err)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	row := func(k string, v any) { fmt.Fprintf(tw, "%s\t%v\n", k, v) }
	row("node", s.Node)
	row("version", s.Version)
	row("ready", s.Ready)
	row("registry", s.RegistryAddr)
	row("data dir", s.DataDir)
	row("origins", s.Origins)
	row("cache", fmt.Sprintf("%s of %s in %d blobs (evicts above %s down to %s)",
		human(s.CacheBytes), human(s.CacheLimit), s.CacheBlobs, human(s.CacheHigh), human(s.CacheLow)))
	for _, h := range s.OriginHealth {
		state := "ok"
		if !h.OK {
			state = fmt.Sprintf("FAILING (%d in a row): %s at %s", h.ConsecutiveFailures, h.LastError, h.LastErrorAt.Format(time.RFC3339))
		}
		row("origin "+h.Origin, state)
	}
	row("outbox pending", s.OutboxPending)
	row("group", s.Group)
	if s.Proxy != "" {
		row("group proxy", s.Proxy)
	}
	for _, o := range s.LockOwners {
		row("lock space", fmt.Sprintf("group %s served by %s", o.Group, o.Proxy))
	}
	for _, h := range s.HeldLocks {
		row("held lock", fmt.Sprintf("%s token=%d limit=%d since %s", h.Name, h.Token, h.Limit, h.Since.Format(time.RFC3339)))
	}
	if s.PeerID != "" {
		row("peer id", s.PeerID)
		row("dht peers", s.DHTPeers)
		for _, a := range s.P2PAddrs {
			row("p2p addr", a)
		}
	}
	if s.OutboxError != "" {
		row("outbox last error", s.OutboxError+" at "+s.OutboxErrorAt)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(s.Members) > 0 {
		fmt.Fprintln(stdout, "\nmembers:")
		mw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(mw, "  NAME\tGROUP\tSTATUS\tADDR\tPROXY")
		for _, m := range s.Members {
			proxy := ""
			if m.Proxy {
				proxy = "yes"
			}
			fmt.Fprintf(mw, "  %s\t%s\t%s\t%s\t%s\n", m.Name, m.Group, m.Status, m.Addr, proxy)
		}
		if err := mw.Flush(); err != nil {
			return err
		}
	}
	if err := printFetches(stdout, s); err != nil {
		return err
	}
	return printPeers(stdout, s)
}

// printFetches lists the recent fetches and where their bytes came from.
func printFetches(w io.Writer, s agent.Status) error {
	if len(s.Fetches) == 0 {
		return nil
	}
	fmt.Fprintln(w, "\nrecent fetches (newest first):")
	fw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(fw, "  DIGEST\tSIZE\tRESULT\tTIME\tFROM ORIGIN\tFROM PEERS\tTOP PEERS")
	for _, f := range s.Fetches {
		dgst := f.Digest
		if i := strings.IndexByte(dgst, ':'); i >= 0 && len(dgst) > i+13 {
			dgst = dgst[:i+13] // algorithm and 12 hex digits, as docker prints them
		}
		peers := human(f.PeerBytes)
		if total := f.OriginBytes + f.PeerBytes; total > 0 {
			peers += fmt.Sprintf(" (%.0f%%)", 100*float64(f.PeerBytes)/float64(total))
		}
		var top []string
		for _, p := range f.Peers {
			name := p.Node
			if name == "" {
				name = shortPeer(p.ID)
			}
			top = append(top, name+" "+human(p.Bytes))
		}
		took := time.Duration(f.Seconds * float64(time.Second)).Round(time.Millisecond)
		fmt.Fprintf(fw, "  %s\t%s\t%s\t%s\t%s\t%s\t%s\n", dgst, human(f.Size), f.Result, took,
			human(f.OriginBytes), peers, strings.Join(top, ", "))
	}
	return fw.Flush()
}

// shortPeer abbreviates a libp2p peer ID to its last 8 characters (its
// first ones are the same for every key of a type).
func shortPeer(id string) string {
	if len(id) <= 12 {
		return id
	}
	return "…" + id[len(id)-8:]
}

// printPeers lists the peers' probe scores, best first.
func printPeers(w io.Writer, s agent.Status) error {
	if len(s.Peers) == 0 {
		return nil
	}
	fmt.Fprintf(w, "\npeers (best first; %d probes, %s of test downloads):\n", s.Probes, human(s.ProbeBytes))
	pw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(pw, "  PEER\tRTT\tTHROUGHPUT\tFAILURES\tIN FLIGHT\tSCORE\tNOTE")
	for _, p := range s.Peers {
		rtt, rate := "-", "-"
		if p.RTTSeconds > 0 {
			rtt = time.Duration(p.RTTSeconds * float64(time.Second)).Round(10 * time.Microsecond).String()
		}
		if p.Throughput > 0 {
			rate = human(int64(p.Throughput)) + "/s"
		}
		var note []string
		if p.SameGroup {
			note = append(note, "same group")
		}
		if p.Banned {
			note = append(note, "BANNED")
		}
		score := time.Duration(p.ScoreSeconds * float64(time.Second)).Round(10 * time.Microsecond)
		fmt.Fprintf(pw, "  %s\t%s\t%s\t%.1f\t%d\t%s\t%s\n", p.ID, rtt, rate, p.Failures, p.InFlight, score, strings.Join(note, ", "))
	}
	return pw.Flush()
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// human prints a byte count with a binary unit.
func human(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 4; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTP"[exp])
}
