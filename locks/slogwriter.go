package locks

import (
	"bytes"
	"context"
	"log"
	"log/slog"
	"strings"
)

// slogWriter turns the "[LEVEL] component: message" lines that serf and
// memberlist print into slog records at the matching level.
type slogWriter struct{ logger *slog.Logger }

// newStdLogger returns a *log.Logger for serf and memberlist that writes to
// logger.
func newStdLogger(logger *slog.Logger) *log.Logger {
	return log.New(slogWriter{logger}, "", 0)
}

func (w slogWriter) Write(p []byte) (int, error) {
	line := string(bytes.TrimSpace(p))
	level := slog.LevelInfo
	if strings.HasPrefix(line, "[") || strings.HasPrefix(line, "Err:") {
		tag, rest, _ := strings.Cut(line, " ")
		switch tag {
		case "[TRACE]":
			level = slog.LevelDebug - 4
		case "[DEBUG]":
			level = slog.LevelDebug
		case "[INFO]":
		case "[WARN]", "Err:":
			level = slog.LevelWarn
		case "[ERR]", "[ERROR]":
			level = slog.LevelError
		default:
			rest = line
		}
		line = rest
	}
	component := ""
	if c, rest, ok := strings.Cut(line, ": "); ok && !strings.ContainsAny(c, " []") {
		component, line = c, rest
	}
	w.logger.Log(context.Background(), level, line, "component", component)
	return len(p), nil
}
