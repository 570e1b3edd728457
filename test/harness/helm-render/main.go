// helm-render renders a Helm chart the way `helm template` does, for what charts/netmon uses, so the
// chart's tests run its templates through the real Go text/template engine and sprig without Helm (and
// without the network): Debian packages golang-go, golang-github-masterminds-sprig-dev and
// golang-github-ghodss-yaml-dev are enough.
//
//	GO111MODULE=off GOPATH=/usr/share/gocode go build -o helm-render .
//	helm-render [-f values.yaml]... [-name netmon] [-namespace netmon] CHART_DIR        the manifests
//	helm-render -values [-f values.yaml]... CHART_DIR                                  the values, as JSON
//	helm-render -notes [-f values.yaml]... CHART_DIR                                   NOTES.txt, rendered
//
// What it does as Helm 3 does (helm.sh/helm/v3 pkg/engine, pkg/chartutil, pkg/releaseutil):
//   - values: the chart's values.yaml, with each -f file deep-merged over it in order (maps merge, any
//     other value replaces; a null removes the chart's key);
//   - .Values .Release (Name, Namespace, Service "Helm", IsInstall, IsUpgrade, Revision) .Chart (Chart.yaml
//     with Helm's field names: .Chart.Name, .Chart.AppVersion, …) .Capabilities (KubeVersion,
//     APIVersions.Has) .Files (every chart file outside templates/ and the chart's own metadata: Get,
//     GetBytes, Glob, Lines, AsConfig, AsSecrets) .Template (Name, BasePath);
//   - functions: sprig's text functions without env and expandenv, plus include, tpl, required, toYaml,
//     fromYaml, fromYamlArray, toJson, fromJson, fromJsonArray (and their must* forms) and lookup, which
//     answers an empty map as `helm template` does without a cluster;
//   - missingkey=zero, and "<no value>" removed from the output;
//   - templates/_* define named templates and render nothing; NOTES.txt is rendered apart;
//   - output: every YAML document as `---\n# Source: <chart>/templates/<file>\n<document>\n`, ordered by
//     Helm's install order of kinds (Namespace, ServiceAccount, Secret, ConfigMap, ClusterRole, …, then
//     unknown kinds by name), files in name order within a kind;
//   - Chart.yaml's kubeVersion is checked against -kube-version;
//   - an error exits 1 and names the template, line and column: "execution error at
//     (netmon/templates/x.yaml:12:5): <message>" for fail and required, Go's own message otherwise.
//
// Values are not checked against values.schema.json here: the caller does that with ajv, as Helm does
// before it renders.
package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"text/template"

	"github.com/Masterminds/sprig"
	"github.com/ghodss/yaml"
)

type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

// Metadata is Chart.yaml with Helm's Go field names, which is what templates see as .Chart.
type Metadata struct {
	Name         string            `json:"name,omitempty"`
	Home         string            `json:"home,omitempty"`
	Sources      []string          `json:"sources,omitempty"`
	Version      string            `json:"version,omitempty"`
	Description  string            `json:"description,omitempty"`
	Keywords     []string          `json:"keywords,omitempty"`
	Maintainers  []*Maintainer     `json:"maintainers,omitempty"`
	Icon         string            `json:"icon,omitempty"`
	APIVersion   string            `json:"apiVersion,omitempty"`
	Condition    string            `json:"condition,omitempty"`
	Tags         string            `json:"tags,omitempty"`
	AppVersion   string            `json:"appVersion,omitempty"`
	Deprecated   bool              `json:"deprecated,omitempty"`
	Annotations  map[string]string `json:"annotations,omitempty"`
	KubeVersion  string            `json:"kubeVersion,omitempty"`
	Dependencies []interface{}     `json:"dependencies,omitempty"`
	Type         string            `json:"type,omitempty"`
}

type Maintainer struct {
	Name  string `json:"name,omitempty"`
	Email string `json:"email,omitempty"`
	URL   string `json:"url,omitempty"`
}

type KubeVersion struct {
	Version string
	Major   string
	Minor   string
}

func (k KubeVersion) String() string     { return k.Version }
func (k KubeVersion) GitVersion() string { return k.Version }

type VersionSet []string

// Has answers for a group/version ("apps/v1") or a group/version/kind ("apps/v1/DaemonSet").
func (v VersionSet) Has(apiVersion string) bool {
	for _, x := range v {
		if x == apiVersion {
			return true
		}
	}
	return false
}

type HelmVersion struct{ Version string }

type Capabilities struct {
	APIVersions VersionSet
	KubeVersion KubeVersion
	HelmVersion HelmVersion
}

// The group/versions a current cluster serves without CRDs (Helm's own default set is the same idea:
// what its client library knows). -api-versions adds more, e.g. monitoring.coreos.com/v1.
var builtinAPIVersions = []string{
	"v1", "admissionregistration.k8s.io/v1", "apiextensions.k8s.io/v1", "apiregistration.k8s.io/v1",
	"apps/v1", "authentication.k8s.io/v1", "authorization.k8s.io/v1", "autoscaling/v1", "autoscaling/v2",
	"batch/v1", "certificates.k8s.io/v1", "coordination.k8s.io/v1", "discovery.k8s.io/v1",
	"events.k8s.io/v1", "flowcontrol.apiserver.k8s.io/v1", "networking.k8s.io/v1", "node.k8s.io/v1",
	"policy/v1", "rbac.authorization.k8s.io/v1", "scheduling.k8s.io/v1", "storage.k8s.io/v1",
}

// Files is .Files: the chart's files outside templates/, by path relative to the chart.
type Files map[string][]byte

func (f Files) GetBytes(name string) []byte { return f[name] }
func (f Files) Get(name string) string      { return string(f[name]) }

// Glob matches with path.Match per path segment ("files/*.yaml"); "**" is not supported.
func (f Files) Glob(pattern string) Files {
	out := Files{}
	for name, data := range f {
		if ok, _ := path.Match(pattern, name); ok {
			out[name] = data
		}
	}
	return out
}

func (f Files) Lines(name string) []string {
	s := string(f[name])
	if s == "" {
		return []string{}
	}
	return strings.Split(strings.TrimSuffix(s, "\n"), "\n")
}

func (f Files) AsConfig() string {
	m := map[string]string{}
	for name, data := range f {
		m[path.Base(name)] = string(data)
	}
	return toYAML(m)
}

func (f Files) AsSecrets() string {
	m := map[string]string{}
	for name, data := range f {
		m[path.Base(name)] = base64.StdEncoding.EncodeToString(data)
	}
	return toYAML(m)
}

// --- YAML and JSON as Helm's functions do them: errors become "" or an "Error" key, never a failure ---

func toYAML(v interface{}) string {
	data, err := yaml.Marshal(v)
	if err != nil {
		return ""
	}
	return strings.TrimSuffix(string(data), "\n")
}

func mustToYAML(v interface{}) (string, error) {
	data, err := yaml.Marshal(v)
	if err != nil {
		return "", err
	}
	return strings.TrimSuffix(string(data), "\n"), nil
}

func fromYAML(s string) map[string]interface{} {
	m := map[string]interface{}{}
	if err := yaml.Unmarshal([]byte(s), &m); err != nil {
		m["Error"] = err.Error()
	}
	return m
}

func fromYAMLArray(s string) []interface{} {
	a := []interface{}{}
	if err := yaml.Unmarshal([]byte(s), &a); err != nil {
		a = []interface{}{err.Error()}
	}
	return a
}

func toJSON(v interface{}) string {
	data, err := json.Marshal(v)
	if err != nil {
		return ""
	}
	return string(data)
}

func mustToJSON(v interface{}) (string, error) {
	data, err := json.Marshal(v)
	if err != nil {
		return "", err
	}
	return string(data), nil
}

func fromJSON(s string) map[string]interface{} {
	m := map[string]interface{}{}
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		m["Error"] = err.Error()
	}
	return m
}

func fromJSONArray(s string) []interface{} {
	a := []interface{}{}
	if err := json.Unmarshal([]byte(s), &a); err != nil {
		a = []interface{}{err.Error()}
	}
	return a
}

// --- values ---

func readValuesFile(file string) (map[string]interface{}, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	m := map[string]interface{}{}
	if err := yaml.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("%s: %v", file, err)
	}
	if m == nil {
		m = map[string]interface{}{}
	}
	return m, nil
}

// mergeMaps is how Helm's command line merges -f files: b over a, maps recursively, anything else replaced.
func mergeMaps(a, b map[string]interface{}) map[string]interface{} {
	out := make(map[string]interface{}, len(a))
	for k, v := range a {
		out[k] = v
	}
	for k, v := range b {
		if vm, ok := v.(map[string]interface{}); ok {
			if am, ok := out[k].(map[string]interface{}); ok {
				out[k] = mergeMaps(am, vm)
				continue
			}
		}
		out[k] = v
	}
	return out
}

// coalesce lays the user's values over the chart's defaults as Helm does: maps merge, the user's other
// values win, and a null the user gives removes the key altogether.
func coalesce(user, defaults map[string]interface{}) map[string]interface{} {
	out := make(map[string]interface{}, len(user)+len(defaults))
	for k, v := range user {
		out[k] = v
	}
	for k, dv := range defaults {
		uv, given := out[k]
		if !given {
			out[k] = dv
			continue
		}
		if uv == nil {
			delete(out, k)
			continue
		}
		um, uok := uv.(map[string]interface{})
		dm, dok := dv.(map[string]interface{})
		if uok && dok {
			out[k] = coalesce(um, dm)
		}
	}
	// A null nested in a map the chart has no default for is removed too.
	for k, v := range out {
		if v == nil {
			delete(out, k)
		}
	}
	return out
}

// --- the chart ---

type chart struct {
	dir       string
	meta      Metadata
	defaults  map[string]interface{}
	templates map[string]string // "netmon/templates/x.yaml" → text
	files     Files
}

func loadChart(dir string) (*chart, error) {
	c := &chart{dir: dir, templates: map[string]string{}, files: Files{}}
	raw, err := os.ReadFile(filepath.Join(dir, "Chart.yaml"))
	if err != nil {
		return nil, err
	}
	if err := yaml.Unmarshal(raw, &c.meta); err != nil {
		return nil, fmt.Errorf("Chart.yaml: %v", err)
	}
	if c.meta.Name == "" {
		return nil, errors.New("Chart.yaml: name is required")
	}
	c.defaults = map[string]interface{}{}
	if _, err := os.Stat(filepath.Join(dir, "values.yaml")); err == nil {
		if c.defaults, err = readValuesFile(filepath.Join(dir, "values.yaml")); err != nil {
			return nil, err
		}
	}
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		rel = filepath.ToSlash(rel)
		if d.IsDir() {
			if rel == "charts" {
				return filepath.SkipDir
			}
			return nil
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		switch {
		case strings.HasPrefix(rel, "templates/"):
			c.templates[c.meta.Name+"/"+rel] = string(data)
		case rel == "Chart.yaml" || rel == "values.yaml" || rel == "values.schema.json" || rel == ".helmignore":
		default:
			c.files[rel] = data
		}
		return nil
	})
	return c, err
}

// --- rendering ---

var recursionLimit = 1000

type renderer struct {
	t        *template.Template
	included map[string]int
}

func (r *renderer) funcs() template.FuncMap {
	f := sprig.TxtFuncMap()
	delete(f, "env")
	delete(f, "expandenv")
	extra := template.FuncMap{
		"toYaml":        toYAML,
		"mustToYaml":    mustToYAML,
		"fromYaml":      fromYAML,
		"fromYamlArray": fromYAMLArray,
		"toJson":        toJSON,
		"mustToJson":    mustToJSON,
		"fromJson":      fromJSON,
		"fromJsonArray": fromJSONArray,
		"required": func(msg string, v interface{}) (interface{}, error) {
			if v == nil {
				return v, errors.New(msg)
			}
			if s, ok := v.(string); ok && s == "" {
				return v, errors.New(msg)
			}
			return v, nil
		},
		"lookup": func(apiVersion, kind, namespace, name string) (map[string]interface{}, error) {
			return map[string]interface{}{}, nil
		},
		"include": r.include,
		"tpl":     r.tpl,
	}
	for k, v := range extra {
		f[k] = v
	}
	return f
}

func (r *renderer) include(name string, data interface{}) (string, error) {
	if r.included[name] > recursionLimit {
		return "", fmt.Errorf("rendering template has a nested reference name: %s", name)
	}
	r.included[name]++
	defer func() { r.included[name]-- }()
	var buf strings.Builder
	err := r.t.ExecuteTemplate(&buf, name, data)
	return buf.String(), err
}

func (r *renderer) tpl(text string, vals interface{}) (string, error) {
	t, err := r.t.Clone()
	if err != nil {
		return "", err
	}
	name := "tpl"
	if m, ok := vals.(map[string]interface{}); ok {
		if tm, ok := m["Template"].(map[string]interface{}); ok {
			if n, ok := tm["Name"].(string); ok && n != "" {
				name = n
			}
		}
	}
	if _, err := t.New(name).Parse(text); err != nil {
		return "", fmt.Errorf("cannot parse tpl text: %v", err)
	}
	var buf strings.Builder
	if err := t.ExecuteTemplate(&buf, name, vals); err != nil {
		return "", err
	}
	return strings.ReplaceAll(buf.String(), "<no value>", ""), nil
}

// cleanError turns a fail/required deep in includes into Helm's "execution error at (file:line:col): msg",
// naming the innermost template; other errors keep Go's own text, which names the template and line.
func cleanError(err error) error {
	s := err.Error()
	calls := regexp.MustCompile(`error calling (fail|required): `)
	locs := calls.FindAllStringIndex(s, -1)
	if len(locs) == 0 {
		return err
	}
	last := locs[len(locs)-1]
	msg := s[last[1]:]
	where := regexp.MustCompile(`template: ([^\s:]+):(\d+):(\d+): `).FindAllStringSubmatch(s[:last[0]], -1)
	if len(where) == 0 {
		return errors.New(msg)
	}
	w := where[len(where)-1]
	return fmt.Errorf("execution error at (%s:%s:%s): %s", w[1], w[2], w[3], msg)
}

type manifest struct {
	source  string
	content string
	kind    string
	order   int
}

// Helm's InstallOrder (pkg/releaseutil/kind_sorter.go): kinds not listed come after, by kind name.
var installOrder = []string{
	"PriorityClass", "Namespace", "NetworkPolicy", "ResourceQuota", "LimitRange", "PodSecurityPolicy",
	"PodDisruptionBudget", "ServiceAccount", "Secret", "SecretList", "ConfigMap", "StorageClass",
	"PersistentVolume", "PersistentVolumeClaim", "CustomResourceDefinition", "ClusterRole", "ClusterRoleList",
	"ClusterRoleBinding", "ClusterRoleBindingList", "Role", "RoleList", "RoleBinding", "RoleBindingList",
	"Service", "DaemonSet", "Pod", "ReplicationController", "ReplicaSet", "Deployment",
	"HorizontalPodAutoscaler", "StatefulSet", "Job", "CronJob", "IngressClass", "Ingress", "APIService",
}

var docSeparator = regexp.MustCompile(`(?:^|\s*\n)---\s*`)

func render(c *chart, values map[string]interface{}, release map[string]interface{}, caps *Capabilities, notesOnly bool) (string, error) {
	r := &renderer{included: map[string]int{}}
	r.t = template.New("gotpl").Option("missingkey=zero")
	r.t.Funcs(r.funcs())

	names := make([]string, 0, len(c.templates))
	for n := range c.templates {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if _, err := r.t.New(n).Parse(c.templates[n]); err != nil {
			return "", err
		}
	}

	top := map[string]interface{}{
		"Values":       values,
		"Release":      release,
		"Chart":        &c.meta,
		"Capabilities": caps,
		"Files":        c.files,
		"Subcharts":    map[string]interface{}{},
	}
	var manifests []manifest
	var notes string
	for _, n := range names {
		base := path.Base(n)
		if strings.HasPrefix(base, "_") {
			continue
		}
		isNotes := base == "NOTES.txt"
		if notesOnly != isNotes {
			continue
		}
		vals := make(map[string]interface{}, len(top)+1)
		for k, v := range top {
			vals[k] = v
		}
		vals["Template"] = map[string]interface{}{"Name": n, "BasePath": c.meta.Name + "/templates"}
		var buf bytes.Buffer
		if err := r.t.ExecuteTemplate(&buf, n, vals); err != nil {
			return "", cleanError(err)
		}
		out := strings.ReplaceAll(buf.String(), "<no value>", "")
		if isNotes {
			notes = out
			continue
		}
		ext := path.Ext(n)
		if ext != ".yaml" && ext != ".yml" && ext != ".json" {
			continue
		}
		trimmed := strings.TrimSpace(out)
		if trimmed == "" {
			continue
		}
		for _, doc := range docSeparator.Split(trimmed, -1) {
			doc = strings.TrimSpace(doc)
			if doc == "" {
				continue
			}
			var head struct {
				Kind string `json:"kind"`
			}
			if err := yaml.Unmarshal([]byte(doc), &head); err != nil {
				return "", fmt.Errorf("YAML parse error on %s: %v", n, err)
			}
			manifests = append(manifests, manifest{source: n, content: doc, kind: head.Kind, order: len(manifests)})
		}
	}
	if notesOnly {
		return notes, nil
	}
	rank := map[string]int{}
	for i, k := range installOrder {
		rank[k] = i
	}
	sort.SliceStable(manifests, func(i, j int) bool {
		ri, iok := rank[manifests[i].kind]
		rj, jok := rank[manifests[j].kind]
		switch {
		case iok && jok:
			return ri < rj
		case iok != jok:
			return iok
		default:
			return manifests[i].kind < manifests[j].kind
		}
	})
	var b strings.Builder
	for _, m := range manifests {
		fmt.Fprintf(&b, "---\n# Source: %s\n%s\n", m.source, m.content)
	}
	return b.String(), nil
}

func main() {
	var valueFiles, apiVersions stringList
	flag.Var(&valueFiles, "f", "values file merged over the chart's values.yaml (repeatable; later files win)")
	flag.Var(&apiVersions, "api-versions", "an API version .Capabilities.APIVersions.Has answers true for (repeatable)")
	name := flag.String("name", "release-name", "release name")
	namespace := flag.String("namespace", "default", "release namespace")
	kubeVersion := flag.String("kube-version", "v1.33.0", "Kubernetes version for .Capabilities.KubeVersion")
	printValues := flag.Bool("values", false, "print the merged values as JSON and exit")
	notes := flag.Bool("notes", false, "print the rendered NOTES.txt instead of the manifests")
	flag.Parse()
	if flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: helm-render [-f values.yaml]... [-name N] [-namespace NS] [-values|-notes] CHART_DIR")
		os.Exit(2)
	}
	fail := func(err error) {
		fmt.Fprintf(os.Stderr, "Error: %v\n", err)
		os.Exit(1)
	}
	c, err := loadChart(flag.Arg(0))
	if err != nil {
		fail(err)
	}
	user := map[string]interface{}{}
	for _, f := range valueFiles {
		m, err := readValuesFile(f)
		if err != nil {
			fail(err)
		}
		user = mergeMaps(user, m)
	}
	values := coalesce(user, c.defaults)
	if *printValues {
		out, err := json.Marshal(values)
		if err != nil {
			fail(err)
		}
		fmt.Println(string(out))
		return
	}
	v := strings.TrimPrefix(*kubeVersion, "v")
	parts := strings.SplitN(v, ".", 3)
	if len(parts) < 2 {
		fail(fmt.Errorf("-kube-version %q: expected vMAJOR.MINOR[.PATCH]", *kubeVersion))
	}
	caps := &Capabilities{
		APIVersions: append(VersionSet(builtinAPIVersions), apiVersions...),
		KubeVersion: KubeVersion{Version: "v" + v, Major: parts[0], Minor: parts[1]},
		HelmVersion: HelmVersion{Version: "v3"},
	}
	if c.meta.KubeVersion != "" {
		// sprig's semverCompare is Masterminds/semver's constraint check, as Helm's.
		compare := sprig.TxtFuncMap()["semverCompare"].(func(string, string) (bool, error))
		ok, err := compare(c.meta.KubeVersion, caps.KubeVersion.Version)
		if err != nil {
			fail(fmt.Errorf("Chart.yaml kubeVersion %q: %v", c.meta.KubeVersion, err))
		}
		if !ok {
			fail(fmt.Errorf("chart requires kubeVersion: %s which is incompatible with Kubernetes %s", c.meta.KubeVersion, caps.KubeVersion.Version))
		}
	}
	release := map[string]interface{}{
		"Name": *name, "Namespace": *namespace, "Service": "Helm",
		"IsInstall": true, "IsUpgrade": false, "Revision": 1,
	}
	out, err := render(c, values, release, caps, *notes)
	if err != nil {
		fail(err)
	}
	fmt.Print(out)
}
