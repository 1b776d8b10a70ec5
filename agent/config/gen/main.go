// Command gen writes the configuration reference, docs/CONFIGURATION.md,
// from the agent/config struct tags and options. Run it from the
// repository root:
//
//	go run ./agent/config/gen
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/shoal-dev/shoal/agent/config"
)

func main() {
	out := flag.String("o", config.ReferencePath, "file to write")
	flag.Parse()
	if err := os.WriteFile(*out, []byte(config.Reference()), 0o644); err != nil {
		fmt.Fprintf(os.Stderr, "gen: %v (run it from the repository root, or pass -o)\n", err)
		os.Exit(1)
	}
}
