package registryapi

import (
	"errors"
	"net/http"
	"syscall"
)

// CodeNoSpace is UNKNOWN served as 507 Insufficient Storage: a write failed
// because the registry host's disk is full. The body names the reason, so
// a client (or its operator) does not mistake it for a bug.
var CodeNoSpace = register("UNKNOWN", http.StatusInsufficientStorage, "insufficient storage: the registry host's disk is full")

// isNoSpace reports whether err comes from a full file system or quota.
func isNoSpace(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT)
}
