package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
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
	row("outbox pending", s.OutboxPending)
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
	return tw.Flush()
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
