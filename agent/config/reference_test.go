package config

import (
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// TestReferenceUpToDate fails when docs/CONFIGURATION.md no longer matches
// the config structs and options.
func TestReferenceUpToDate(t *testing.T) {
	t.Parallel()
	path := filepath.Join("..", "..", filepath.FromSlash(ReferencePath))
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v\nregenerate it from the repository root with: go run ./agent/config/gen (or make docs)", err)
	}
	want := Reference()
	if string(got) == want {
		return
	}
	gl, wl := strings.Split(string(got), "\n"), strings.Split(want, "\n")
	line := 0
	for line < len(gl) && line < len(wl) && gl[line] == wl[line] {
		line++
	}
	at := func(ls []string) string {
		if line < len(ls) {
			return ls[line]
		}
		return "(end of file)"
	}
	t.Fatalf("%s is stale; regenerate it from the repository root with:\n\tgo run ./agent/config/gen   (or: make docs)\nfirst difference at line %d:\n\tfile: %s\n\tcode: %s",
		ReferencePath, line+1, at(gl), at(wl))
}

// TestReferenceDeterministic guards the staleness test against map order.
func TestReferenceDeterministic(t *testing.T) {
	t.Parallel()
	first := Reference()
	for range 5 {
		if Reference() != first {
			t.Fatal("Reference() differs between calls")
		}
	}
}

// TestFieldsDocumented checks that every configuration key has a doc tag,
// that no unexported field carries a yaml tag (the decoder would skip it),
// and that the reference lists every key.
func TestFieldsDocumented(t *testing.T) {
	t.Parallel()
	var check func(reflect.Type, string)
	check = func(typ reflect.Type, prefix string) {
		for i := range typ.NumField() {
			sf := typ.Field(i)
			tag, ok := sf.Tag.Lookup("yaml")
			name, _, _ := strings.Cut(tag, ",")
			switch {
			case !sf.IsExported():
				if ok {
					t.Errorf("%s%s: unexported field with a yaml tag", prefix, sf.Name)
				}
				continue
			case !ok || name == "" || name == "-":
				t.Errorf("%s%s: exported field without a yaml key", prefix, sf.Name)
				continue
			}
			if isSection(sf.Type) {
				check(sf.Type, prefix+name+".")
				continue
			}
			if strings.TrimSpace(sf.Tag.Get("doc")) == "" {
				t.Errorf("%s%s: no doc tag", prefix, name)
			}
		}
	}
	check(reflect.TypeFor[Config](), "")
	ref := Reference()
	for _, f := range Fields() {
		if !strings.Contains(ref, "| `"+f.Key+"` |") {
			t.Errorf("%s: missing from Reference()", f.Key)
		}
	}
}

// TestOptionsNameFields checks that every flag's Key names a configuration
// key of the right kind and that flags and variables are unique.
func TestOptionsNameFields(t *testing.T) {
	t.Parallel()
	fields := map[string]Field{}
	for _, f := range Fields() {
		fields[f.Key] = f
	}
	flags, envs := map[string]bool{"config": true}, map[string]bool{"SHOAL_CONFIG": true}
	for _, o := range Options() {
		f, ok := fields[o.Key]
		if !ok {
			t.Errorf("--%s: Key %q is not a configuration key", o.Flag, o.Key)
			continue
		}
		if isList := strings.HasPrefix(f.Type, "list of "); o.Repeat != isList {
			t.Errorf("--%s: Repeat=%v but %s is a %s", o.Flag, o.Repeat, o.Key, f.Type)
		}
		if o.Bool != (f.Type == "bool") {
			t.Errorf("--%s: Bool=%v but %s is a %s", o.Flag, o.Bool, o.Key, f.Type)
		}
		if flags[o.Flag] || envs[o.Env] {
			t.Errorf("--%s / %s: used twice", o.Flag, o.Env)
		}
		flags[o.Flag], envs[o.Env] = true, true
		if !strings.HasPrefix(o.Env, "SHOAL_") || o.Usage == "" {
			t.Errorf("--%s: env %q, usage %q", o.Flag, o.Env, o.Usage)
		}
	}
}

// TestDerivedDefaults checks that the keys the reference calls derived are
// exactly those Finish fills in, and that each documents how.
func TestDerivedDefaults(t *testing.T) {
	// t.Setenv: not parallel. STATE_DIRECTORY keeps DefaultDataDir from
	// probing (and creating) directories on the host.
	t.Setenv("STATE_DIRECTORY", t.TempDir())
	before := Default()
	after := before
	if err := after.Finish(); err != nil {
		t.Fatal(err)
	}
	bv, av := reflect.ValueOf(before), reflect.ValueOf(after)
	var changed []string
	for _, f := range Fields() {
		if !reflect.DeepEqual(bv.FieldByIndex(f.Index).Interface(), av.FieldByIndex(f.Index).Interface()) {
			changed = append(changed, f.Key)
		}
		if finishDerived[f.Key] && f.Derived == "" {
			t.Errorf("%s: derived, but its doc tag has no \"Default: ...\" sentence", f.Key)
		}
	}
	var want []string
	for k := range finishDerived {
		want = append(want, k)
	}
	slices.Sort(changed)
	slices.Sort(want)
	if !slices.Equal(changed, want) {
		t.Errorf("Finish changes %v; finishDerived lists %v", changed, want)
	}
}

func TestFormatValue(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   any
		want string
	}{
		{"", ""},
		{"x", "x"},
		{true, "true"},
		{0.9, "0.9"},
		{7, "7"},
		{ByteSize(1 << 30), "1073741824"},
		{Duration(30e9), "30s"},
		{[]string(nil), ""},
		{[]string{"a", "b"}, "[a, b]"},
	}
	for _, tc := range tests {
		if got := formatValue(reflect.ValueOf(tc.in)); got != tc.want {
			t.Errorf("formatValue(%#v) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
