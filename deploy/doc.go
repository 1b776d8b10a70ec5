// Package deploy holds what installs Shoal on a host, and the tests that
// keep it working:
//
//	deploy/
//	├── install.sh             installs or removes binary, unit and default config
//	├── shoal.yaml             the default /etc/shoal/config.yaml, every key documented
//	└── systemd/shoal.service  Type=notify unit with watchdog and sandboxing
//
// It has no Go API.
package deploy
