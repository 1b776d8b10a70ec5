package config

//go:generate go run ./gen -o ../../docs/CONFIGURATION.md

import (
	"fmt"
	"reflect"
	"strconv"
	"strings"
)

// ReferencePath is where the generated configuration reference lives,
// relative to the repository root.
const ReferencePath = "docs/CONFIGURATION.md"

// finishDerived lists the keys whose default Finish computes from the
// environment or from other keys; their doc text carries a "Default: ..."
// sentence that the reference shows instead of a value.
var finishDerived = map[string]bool{"data_dir": true, "origins": true, "node_name": true}

// Field describes one configuration key, found by walking Config's yaml and
// doc struct tags.
type Field struct {
	Key     string // dotted YAML path, e.g. cache.max_bytes
	Section string // first path component for nested keys, "" for top-level ones
	Type    string // string, bool, int, float, duration, size, list of strings
	Doc     string // the field's doc tag
	Default string // Default()'s value as YAML would spell it; "" when unset
	Derived string // for keys Finish fills in: how (from the doc's "Default:" sentence)
	Index   []int  // reflect field index path into Config
}

// Fields lists every configuration key in declaration order: top-level keys
// first, then each section's keys.
func Fields() []Field {
	var top, nested []Field
	def := reflect.ValueOf(Default())
	walkFields(reflect.TypeFor[Config](), nil, "", func(f Field) {
		v := def.FieldByIndex(f.Index)
		f.Default = formatValue(v)
		if finishDerived[f.Key] {
			f.Derived = derivedText(f.Doc)
		}
		if f.Section == "" {
			top = append(top, f)
		} else {
			nested = append(nested, f)
		}
	})
	// Keep sections together in the order their structs are declared.
	var order []string
	bySection := map[string][]Field{}
	for _, f := range nested {
		if _, ok := bySection[f.Section]; !ok {
			order = append(order, f.Section)
		}
		bySection[f.Section] = append(bySection[f.Section], f)
	}
	out := top
	for _, s := range order {
		out = append(out, bySection[s]...)
	}
	return out
}

// walkFields calls fn for every leaf field under t. A field with a yaml tag
// whose type is a struct without its own YAML decoding is a section.
func walkFields(t reflect.Type, index []int, prefix string, fn func(Field)) {
	for i := range t.NumField() {
		sf := t.Field(i)
		name, _, _ := strings.Cut(sf.Tag.Get("yaml"), ",")
		if name == "" || name == "-" {
			continue
		}
		key := name
		if prefix != "" {
			key = prefix + "." + name
		}
		idx := append(append([]int(nil), index...), i)
		if isSection(sf.Type) {
			walkFields(sf.Type, idx, key, fn)
			continue
		}
		section := ""
		if prefix != "" {
			section, _, _ = strings.Cut(prefix, ".")
		}
		fn(Field{Key: key, Section: section, Type: typeName(sf.Type), Doc: sf.Tag.Get("doc"), Index: idx})
	}
}

// isSection reports whether t is a nested block of keys rather than a value.
func isSection(t reflect.Type) bool {
	return t.Kind() == reflect.Struct && t != reflect.TypeFor[Duration]() && t != reflect.TypeFor[ByteSize]()
}

// typeName names a field's type as an operator writes it.
func typeName(t reflect.Type) string {
	switch t {
	case reflect.TypeFor[Duration]():
		return "duration"
	case reflect.TypeFor[ByteSize]():
		return "size"
	}
	switch t.Kind() {
	case reflect.String:
		return "string"
	case reflect.Bool:
		return "bool"
	case reflect.Int, reflect.Int64, reflect.Int32:
		return "int"
	case reflect.Float64, reflect.Float32:
		return "float"
	case reflect.Slice:
		return "list of " + typeName(t.Elem()) + "s"
	}
	return t.String()
}

// formatValue prints a default the way it would be written in the YAML file.
func formatValue(v reflect.Value) string {
	switch x := v.Interface().(type) {
	case Duration:
		return x.String()
	case ByteSize:
		return x.String()
	}
	switch v.Kind() {
	case reflect.String:
		return v.String()
	case reflect.Bool:
		return strconv.FormatBool(v.Bool())
	case reflect.Int, reflect.Int64, reflect.Int32:
		return strconv.FormatInt(v.Int(), 10)
	case reflect.Float64, reflect.Float32:
		return strconv.FormatFloat(v.Float(), 'g', -1, 64)
	case reflect.Slice:
		if v.Len() == 0 {
			return ""
		}
		parts := make([]string, v.Len())
		for i := range parts {
			parts[i] = formatValue(v.Index(i))
		}
		return "[" + strings.Join(parts, ", ") + "]"
	}
	return fmt.Sprint(v.Interface())
}

// derivedText is the "Default: ..." sentence of a doc tag, without the
// label and the final period.
func derivedText(doc string) string {
	_, after, ok := strings.Cut(doc, "Default: ")
	if !ok {
		return ""
	}
	return strings.TrimSuffix(strings.TrimSpace(after), ".")
}

// docWithoutDefault drops the "Default: ..." sentence, which the default
// column already shows.
func docWithoutDefault(doc string) string {
	before, _, ok := strings.Cut(doc, "Default: ")
	if !ok {
		return doc
	}
	return strings.TrimSpace(before)
}

// Reference returns the Markdown configuration reference (docs/CONFIGURATION.md):
// one table per YAML section with each key's type, default, flag,
// environment variable and documentation. The output depends only on the
// code, never on the host, so a test can compare it with the committed file.
func Reference() string {
	opts := map[string]Option{}
	for _, o := range Options() {
		opts[o.Key] = o
	}
	var b strings.Builder
	b.WriteString(referenceIntro)
	section := "-"
	for _, f := range Fields() {
		if f.Section != section {
			section = f.Section
			title, note := "Top-level keys", ""
			if section != "" {
				title = "`" + section + "`"
				note = "Keys under `" + section + ":` in the YAML file.\n\n"
			}
			fmt.Fprintf(&b, "\n## %s\n\n%s", title, note)
			b.WriteString("| key | type | default | flag | environment | description |\n")
			b.WriteString("|---|---|---|---|---|---|\n")
		}
		def, doc := code(f.Default), f.Doc
		switch {
		case f.Derived != "":
			def, doc = "derived: "+escape(f.Derived), docWithoutDefault(f.Doc)
		case f.Default == "":
			def = "unset"
		}
		flagCell, envCell := "—", "—"
		if o, ok := opts[f.Key]; ok {
			flagCell, envCell = code("--"+o.Flag), code(o.Env)
			switch {
			case o.Repeat:
				flagCell += " (repeatable)"
				envCell += " (comma-separated)"
			case o.Bool:
				flagCell += " (`--" + o.Flag + "=false` to turn off)"
			}
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s |\n", code(f.Key), f.Type, def, flagCell, envCell, escape(doc))
	}
	b.WriteString(referenceFormats)
	return b.String()
}

// code formats s as inline code for a table cell.
func code(s string) string {
	return "`" + strings.ReplaceAll(s, "|", `\|`) + "`"
}

// escape makes doc text safe in a Markdown table cell.
func escape(s string) string {
	return strings.NewReplacer("|", `\|`, "<", "&lt;", ">", "&gt;").Replace(s)
}

const referenceIntro = `# Shoal configuration reference

<!-- Generated from agent/config by ` + "`go run ./agent/config/gen`" + ` (or ` + "`make docs`" + `). Do not edit by hand:
     TestReferenceUpToDate fails when this file and the code disagree. -->

` + "`shoal agent`" + ` reads its settings in this order, each overriding the one before:

1. the defaults below (` + "`shoal agent`" + ` with nothing set runs a single-host agent with a
   ` + "`file`" + ` object store under its data directory);
2. the YAML file named by ` + "`--config FILE`" + ` or ` + "`SHOAL_CONFIG`" + ` (unknown keys are errors);
3. ` + "`SHOAL_*`" + ` environment variables (list values are comma-separated);
4. command-line flags.

A list set by a variable or by flags replaces the list from the file; it does not add to it.
Defaults marked *derived* are computed at start-up when the key is unset. Keys with no flag or
variable can only be set in the YAML file. ` + "`shoal agent --help`" + ` prints the flags;
[deploy/shoal.yaml](../deploy/shoal.yaml) is a commented file with every key. The whole
configuration is validated at start-up, and every invalid setting is reported at once.
`

const referenceFormats = `
## Value formats

- **duration**: a Go duration, e.g. ` + "`30s`, `2m`, `1h30m`" + `.
- **size**: bytes, plain (` + "`1073741824`" + `) or with a unit: ` + "`KiB`, `MiB`, `GiB`, `TiB`" + ` (powers of
  1024) or ` + "`KB`, `MB`, `GB`, `TB`" + ` (powers of 1000), e.g. ` + "`20GiB`" + `.
- **bool**: in YAML ` + "`true`/`false`" + `; a boolean flag alone means true (` + "`--p2p`" + `), ` + "`--p2p=false`" + ` turns it
  off; variables take ` + "`true`, `false`, `1`, `0`" + `.
- **list of strings**: a YAML sequence; a repeated flag; a comma-separated variable.
`
