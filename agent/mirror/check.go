package mirror

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"

	"github.com/pelletier/go-toml/v2"
)

// Warning is a containerd setting that stops, or may stop, containerd from
// using the hosts.toml files under CertsDir.
type Warning struct {
	// Key is the config.toml key concerned, as a dotted TOML path.
	Key string
	// Message says what goes wrong and why.
	Message string
	// Fix is a config.toml fragment that resolves it (containerd must be
	// restarted after editing config.toml).
	Fix string
	// Advisory is set when the setting breaks the mirror only on some
	// containerd versions, or only relies on a version's default; without
	// it, the mirror is not used as configured.
	Advisory bool
}

// String renders w for a terminal.
func (w Warning) String() string {
	s := w.Key + ": " + w.Message
	if w.Fix != "" {
		s += "\n  fix:\n" + indent(w.Fix, "    ")
	}
	return s
}

// Plugin IDs whose registry settings CRI pulls use. Config version 3
// (containerd 2.x) names the images plugin; version 2 (containerd 1.x, still
// read and migrated by 2.x) names the CRI plugin; version 1 used bare names
// and was removed in containerd 2.0 (containerd docs/cri/config.md).
const (
	imagesPluginV3 = "io.containerd.cri.v1.images"
	criPluginV2    = "io.containerd.grpc.v1.cri"
	criPluginV1    = "cri"
)

// CheckContainerdConfig reads a containerd config.toml and reports the
// settings under which containerd ignores the hosts.toml files that
// WriteContainerd writes under CertsDir. The facts, from containerd's docs
// (docs/hosts.md, docs/cri/config.md) and source (v1.6.38, v2.1.5–v2.4.2):
//
//   - CRI reads hosts.toml only from registry.config_path. Before 2.2 it is
//     empty by default, so no hosts.toml is read; from 2.2 on Linux it
//     defaults to "/etc/containerd/certs.d:/etc/docker/certs.d"
//     (plugins/cri/images/plugin.go).
//   - registry.mirrors together with config_path is a configuration error:
//     "`mirrors` cannot be set when `config_path` is provided"
//     (internal/cri/config/config.go; pkg/cri/config in 1.x).
//   - From 2.1, CRI pulls go through the transfer service unless
//     use_local_image_pull = true (plugins."io.containerd.cri.v1.images";
//     containerd PR #8515). That path hands config_path to the resolver as
//     one directory (internal/cri/server/images/image_pull.go,
//     registry.WithHostDir), while the local path splits it as a list: so a
//     list such as the 2.2+ default, or EKS's explicit one, makes the
//     transfer service read no hosts.toml at all (containerd issue #12415;
//     reported against spegel, a mirror like shoal, in spegel-org/spegel#1272).
//
// It returns nil when containerd will use the mirror. The config's version
// tells 1.x and 2.x formats apart, but not which containerd reads it, so
// warnings that depend on the version are marked Advisory.
func CheckContainerdConfig(configTOML []byte) []Warning {
	var cfg map[string]any
	if err := toml.Unmarshal(configTOML, &cfg); err != nil {
		return []Warning{{Key: "config.toml", Message: fmt.Sprintf("does not parse, so neither shoal nor containerd can use it: %v", err)}}
	}
	version, _ := cfg["version"].(int64)
	if version == 0 {
		version = 1
	}

	var ws []Warning
	var registry map[string]any
	var regKey, regFix, localPullKey, localPullFix string
	switch version {
	case 3:
		registry = table(cfg, "plugins", imagesPluginV3, "registry")
		regKey = fmt.Sprintf("plugins.'%s'.registry", imagesPluginV3)
		regFix = fmt.Sprintf("[plugins.'%s'.registry]\n  config_path = '%s'", imagesPluginV3, CertsDir)
	case 2:
		// containerd 2.x migrates this table into the images plugin's,
		// which a version 2 file may also set directly.
		registry = table(cfg, "plugins", criPluginV2, "registry")
		if _, ok := registry["config_path"]; !ok {
			if r := table(cfg, "plugins", imagesPluginV3, "registry"); r != nil {
				registry = r
			}
		}
		regKey = fmt.Sprintf("plugins.%q.registry", criPluginV2)
		regFix = fmt.Sprintf("[plugins.%q.registry]\n  config_path = %q", criPluginV2, CertsDir)
	default:
		registry = table(cfg, "plugins", criPluginV1, "registry")
		regKey = fmt.Sprintf("plugins.%s.registry", criPluginV1)
		regFix = fmt.Sprintf("[plugins.%s.registry]\n  config_path = %q", criPluginV1, CertsDir)
		ws = append(ws, Warning{
			Key:      "version",
			Message:  fmt.Sprintf("config version %d: containerd 2.0 removed support for it; containerd 1.x reads it", version),
			Fix:      "version = 2  # containerd 1.x, renaming plugin tables to their io.containerd.* IDs\nversion = 3  # containerd 2.x",
			Advisory: true,
		})
	}
	localPullKey = fmt.Sprintf("plugins.'%s'.use_local_image_pull", imagesPluginV3)
	localPullFix = fmt.Sprintf("[plugins.'%s']\n  use_local_image_pull = true", imagesPluginV3)

	configPath, _ := registry["config_path"].(string)
	paths := filepath.SplitList(configPath)
	mirrors, _ := registry["mirrors"].(map[string]any)
	certsDir := filepath.Clean(CertsDir)
	listed := slices.ContainsFunc(paths, func(p string) bool { return filepath.Clean(p) == certsDir })

	switch {
	case configPath != "" && len(mirrors) > 0:
		ws = append(ws, Warning{
			Key:     regKey + ".mirrors",
			Message: "set together with config_path: containerd rejects this CRI configuration (\"`mirrors` cannot be set when `config_path` is provided\"); move the mirrors into hosts.toml files and delete the mirrors table",
		})
	case configPath == "" && len(mirrors) > 0:
		ws = append(ws, Warning{
			Key:     regKey + ".config_path",
			Message: fmt.Sprintf("not set, and the deprecated registry.mirrors table is used instead: containerd reads no hosts.toml, so the files under %s have no effect; move the mirrors into hosts.toml files, delete the mirrors table and set config_path", CertsDir),
			Fix:     regFix,
		})
	case configPath == "" && version >= 2:
		ws = append(ws, Warning{
			Key:     regKey + ".config_path",
			Message: fmt.Sprintf("not set: containerd before 2.2 then reads no hosts.toml, and 2.2+ defaults it to the list \"%s:/etc/docker/certs.d\", which the transfer service cannot read (see use_local_image_pull); set it to %s", CertsDir, CertsDir),
			Fix:     regFix,
		})
	case configPath == "":
		ws = append(ws, Warning{
			Key:     regKey + ".config_path",
			Message: fmt.Sprintf("not set: containerd reads no hosts.toml, so the files under %s have no effect", CertsDir),
			Fix:     regFix,
		})
	case !listed:
		ws = append(ws, Warning{
			Key:     regKey + ".config_path",
			Message: fmt.Sprintf("is %q: containerd looks for hosts.toml files there, not under %s where shoal writes them", configPath, CertsDir),
			Fix:     regFix,
		})
	}

	if version < 2 {
		return ws // containerd 1.x: no transfer service in CRI pulls
	}
	localPull, _ := table(cfg, "plugins", imagesPluginV3)["use_local_image_pull"].(bool)
	if localPull {
		return ws
	}
	scope := "containerd 2.1+"
	if version == 2 {
		scope = "containerd 2.1+, if that is what reads this version 2 file,"
	}
	w := Warning{Key: localPullKey, Fix: localPullFix}
	switch {
	case len(paths) > 1:
		w.Message = fmt.Sprintf("not true: %s pulls CRI images through the transfer service, which takes config_path %q as one directory name rather than a list, finds no such directory and reads no hosts.toml (containerd issue #12415); the mirror is not used", scope, configPath)
		w.Advisory = version == 2
	case configPath == "":
		w.Message = fmt.Sprintf("not true: %s pulls CRI images through the transfer service, which reads hosts.toml only from a single-directory config_path; 2.2+'s default is a list, so the mirror is not used", scope)
		w.Advisory = version == 2
	default:
		w.Message = fmt.Sprintf("not true: %s pulls CRI images through the transfer service; with a single-directory config_path it reads hosts.toml too, but mirrors have been reported bypassed on that path (spegel-org/spegel#1272) and it differs from the local path in what it supports; shoal recommends the local pull path", scope)
		w.Advisory = true
	}
	return append(ws, w)
}

// table walks nested TOML tables, returning nil when one is missing.
func table(m map[string]any, keys ...string) map[string]any {
	for _, k := range keys {
		next, ok := m[k].(map[string]any)
		if !ok {
			return nil
		}
		m = next
	}
	return m
}

// indent prefixes every line of s.
func indent(s, prefix string) string {
	return prefix + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n"+prefix)
}
