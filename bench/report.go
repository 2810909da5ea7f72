package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"runtime"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	humanize "github.com/dustin/go-humanize"
	"golang.org/x/sys/unix"
)

// cell holds every sample of one metric on one target.
type cell struct {
	Samples []float64 `json:"samples"`
	Errors  []string  `json:"errors,omitempty"`
	Median  *float64  `json:"median,omitempty"`
	Min     *float64  `json:"min,omitempty"`
	Max     *float64  `json:"max,omitempty"`
	Q1      *float64  `json:"q1,omitempty"`
	Q3      *float64  `json:"q3,omitempty"`
	// Ratios of this target's median to the baselines' medians: loopback
	// and plain, and btrfs for the snapshot workloads.
	VsLoopback *float64 `json:"vs_loopback,omitempty"`
	VsPlain    *float64 `json:"vs_plain,omitempty"`
	VsBtrfs    *float64 `json:"vs_btrfs,omitempty"`
	// For a 2-member pool layout: its median over its 1-member
	// counterpart's (poolOneMember), the striping speedup.
	VsOneMember *float64 `json:"vs_one_member,omitempty"`
}

type metricResult struct {
	Workload     string           `json:"workload"`
	Metric       string           `json:"metric"`
	Unit         string           `json:"unit"`
	HigherBetter bool             `json:"higher_is_better"`
	Desc         string           `json:"description"`
	Targets      map[string]*cell `json:"targets"`
}

type results struct {
	Machine  machineInfo                    `json:"machine"`
	Config   map[string]any                 `json:"config"`
	Targets  []string                       `json:"targets"`
	Metrics  []*metricResult                `json:"metrics"`
	Notes    map[string]map[string][]string `json:"notes,omitempty"` // workload -> note -> targets
	Setup    map[string]string              `json:"setup_errors,omitempty"`
	PeakRSS  map[string]map[string]uint64   `json:"daemon_peak_rss_bytes,omitempty"` // target -> workload -> max VmHWM
	Started  time.Time                      `json:"started"`
	Duration float64                        `json:"duration_seconds"`
	byKey    map[string]*metricResult
}

func newResults(targets []string) *results {
	return &results{
		Targets: targets,
		Config:  map[string]any{},
		Notes:   map[string]map[string][]string{},
		Setup:   map[string]string{},
		PeakRSS: map[string]map[string]uint64{},
		Started: time.Now(),
		byKey:   map[string]*metricResult{},
	}
}

func (r *results) metric(w *workload, m metricSpec) *metricResult {
	k := w.name + "/" + m.key
	if mr, ok := r.byKey[k]; ok {
		return mr
	}
	mr := &metricResult{Workload: w.name, Metric: m.key, Unit: m.unit, HigherBetter: m.higherBetter, Desc: m.desc, Targets: map[string]*cell{}}
	r.byKey[k] = mr
	r.Metrics = append(r.Metrics, mr)
	return mr
}

func (r *results) cell(w *workload, m metricSpec, target string) *cell {
	mr := r.metric(w, m)
	c, ok := mr.Targets[target]
	if !ok {
		c = &cell{}
		mr.Targets[target] = c
	}
	return c
}

func (r *results) addNote(w, note, target string) {
	if r.Notes[w] == nil {
		r.Notes[w] = map[string][]string{}
	}
	for _, t := range r.Notes[w][note] {
		if t == target {
			return
		}
	}
	r.Notes[w][note] = append(r.Notes[w][note], target)
}

func (r *results) addPeak(target, w string, v uint64) {
	if r.PeakRSS[target] == nil {
		r.PeakRSS[target] = map[string]uint64{}
	}
	if v > r.PeakRSS[target][w] {
		r.PeakRSS[target][w] = v
	}
}

// quantile by linear interpolation over sorted s.
func quantile(s []float64, q float64) float64 {
	if len(s) == 1 {
		return s[0]
	}
	pos := q * float64(len(s)-1)
	lo := int(math.Floor(pos))
	hi := int(math.Ceil(pos))
	return s[lo] + (s[hi]-s[lo])*(pos-float64(lo))
}

func ptr(v float64) *float64 { return &v }

// finish computes medians, spreads and ratios.
func (r *results) finish() {
	r.Duration = time.Since(r.Started).Seconds()
	for _, mr := range r.Metrics {
		for _, c := range mr.Targets {
			if len(c.Samples) == 0 {
				continue
			}
			s := append([]float64(nil), c.Samples...)
			sort.Float64s(s)
			c.Median, c.Min, c.Max = ptr(quantile(s, 0.5)), ptr(s[0]), ptr(s[len(s)-1])
			if len(s) >= 4 {
				c.Q1, c.Q3 = ptr(quantile(s, 0.25)), ptr(quantile(s, 0.75))
			}
		}
		base := func(name string) *float64 {
			if c, ok := mr.Targets[name]; ok && c.Median != nil && *c.Median != 0 {
				return c.Median
			}
			return nil
		}
		lb, pl, bt := base("loopback"), base("plain"), base("btrfs")
		for t, c := range mr.Targets {
			if c.Median == nil {
				continue
			}
			if one := base(poolOneMember[t]); one != nil {
				c.VsOneMember = ptr(*c.Median / *one)
			}
			if lb != nil {
				c.VsLoopback = ptr(*c.Median / *lb)
			}
			if pl != nil {
				c.VsPlain = ptr(*c.Median / *pl)
			}
			if bt != nil && workloadByName(mr.Workload).snapshot {
				c.VsBtrfs = ptr(*c.Median / *bt)
			}
		}
	}
}

func (r *results) writeJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

func fmtNum(v float64) string {
	a := math.Abs(v)
	switch {
	case a >= 1e5:
		return fmt.Sprintf("%.0f", v)
	case a >= 100:
		return fmt.Sprintf("%.1f", v)
	case a >= 1:
		return fmt.Sprintf("%.2f", v)
	default:
		return fmt.Sprintf("%.3f", v)
	}
}

func fmtRatio(v *float64) string {
	if v == nil {
		return "-"
	}
	return fmt.Sprintf("%.2fx", *v)
}

// writeText prints the header and one table per metric.
func (r *results) writeText(w io.Writer) {
	m := r.Machine
	fmt.Fprintf(w, "snapfs bench  %s\n", r.Started.Format(time.RFC3339))
	fmt.Fprintf(w, "machine: %d cores (%s), %s RAM, kernel %s, %s\n", m.Cores, m.CPU, humanize.IBytes(m.MemBytes), m.Kernel, m.GoVersion)
	fmt.Fprintf(w, "work dir: %s on %s (%s)\n", m.WorkDir, m.WorkFS, m.WorkDev)
	fmt.Fprintf(w, "tools: %s\n", m.Tools)
	keys := make([]string, 0, len(r.Config))
	for k := range r.Config {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var cfg []string
	for _, k := range keys {
		cfg = append(cfg, fmt.Sprintf("%s=%v", k, r.Config[k]))
	}
	fmt.Fprintf(w, "config: %s\n", strings.Join(cfg, " "))
	for _, t := range r.Targets {
		if e, ok := r.Setup[t]; ok {
			fmt.Fprintf(w, "target %s: n/a: %s\n", t, e)
		}
	}
	fmt.Fprintln(w, "\nEach table: median of the repetitions, the spread (min-max; IQR when >= 4 runs),")
	fmt.Fprintln(w, "and the median divided by loopback's (the no-passthrough FUSE baseline) and plain's.")
	fmt.Fprintln(w, "For a 'higher is better' figure a ratio below 1 is slower; for times, above 1 is slower.")
	fmt.Fprintln(w, "In the pool workload, 'vs 1 member' divides a 2-member layout's median by its 1-member layout's.")

	lastW := ""
	printed := map[string]bool{} // workload|target|error already shown
	for _, mr := range r.Metrics {
		if mr.Workload != lastW {
			lastW = mr.Workload
			fmt.Fprintf(w, "\n=== %s: %s\n", mr.Workload, workloadByName(mr.Workload).desc)
			var notes []string
			for n := range r.Notes[mr.Workload] {
				notes = append(notes, n)
			}
			sort.Strings(notes)
			for _, n := range notes {
				fmt.Fprintf(w, "    note: %s (%s)\n", n, strings.Join(r.Notes[mr.Workload][n], ", "))
			}
		}
		dir := "lower is better"
		if mr.HigherBetter {
			dir = "higher is better"
		}
		fmt.Fprintf(w, "\n%s [%s, %s]: %s\n", mr.Metric, mr.Unit, dir, mr.Desc)
		// Ratio columns only for baselines that have a figure here.
		type col struct {
			name string
			get  func(*cell) *float64
		}
		var cols []col
		for _, b := range []col{
			{"loopback", func(c *cell) *float64 { return c.VsLoopback }},
			{"plain", func(c *cell) *float64 { return c.VsPlain }},
			{"btrfs", func(c *cell) *float64 { return c.VsBtrfs }},
			{"1 member", func(c *cell) *float64 { return c.VsOneMember }},
		} {
			for _, c := range mr.Targets {
				if b.get(c) != nil {
					cols = append(cols, b)
					break
				}
			}
		}
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		hdr := "target\tmedian\tspread\truns\t"
		for _, b := range cols {
			hdr += "vs " + b.name + "\t"
		}
		fmt.Fprintln(tw, hdr)
		var failures []string
		for _, t := range r.Targets {
			c, ok := mr.Targets[t]
			if !ok {
				continue
			}
			if len(c.Errors) > 0 {
				k := mr.Workload + "|" + t + "|" + c.Errors[0]
				if !printed[k] {
					printed[k] = true
					failures = append(failures, fmt.Sprintf("    %s: n/a: %s", t, c.Errors[0]))
				}
			}
			if c.Median == nil {
				fmt.Fprintf(tw, "%s\tn/a\t\t0\t%s\n", t, strings.Repeat("\t", len(cols)))
				continue
			}
			spread := fmt.Sprintf("%s-%s", fmtNum(*c.Min), fmtNum(*c.Max))
			if c.Q1 != nil {
				spread = fmt.Sprintf("IQR %s-%s", fmtNum(*c.Q1), fmtNum(*c.Q3))
			}
			runs := fmt.Sprintf("%d", len(c.Samples))
			if len(c.Errors) > 0 {
				runs += fmt.Sprintf(" (%d failed)", len(c.Errors))
			}
			line := fmt.Sprintf("%s\t%s\t%s\t%s\t", t, fmtNum(*c.Median), spread, runs)
			for _, b := range cols {
				line += fmtRatio(b.get(c)) + "\t"
			}
			fmt.Fprintln(tw, line)
		}
		tw.Flush()
		for _, f := range failures {
			fmt.Fprintln(w, f)
		}
	}
	if len(r.PeakRSS) > 0 {
		fmt.Fprintf(w, "\n=== daemon peak resident memory (VmHWM) per workload, max over runs\n")
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "target\tworkload\tpeak RSS\t")
		for _, t := range r.Targets {
			for _, wl := range allWorkloads {
				if v, ok := r.PeakRSS[t][wl.name]; ok {
					fmt.Fprintf(tw, "%s\t%s\t%s\t\n", t, wl.name, humanize.IBytes(v))
				}
			}
		}
		tw.Flush()
	}
	fmt.Fprintf(w, "\ntotal time: %s\n", time.Duration(r.Duration*float64(time.Second)).Round(time.Second))
}

// ---- machine --------------------------------------------------------------------

type machineInfo struct {
	Cores     int    `json:"cores"`
	CPU       string `json:"cpu"`
	MemBytes  uint64 `json:"mem_bytes"`
	Kernel    string `json:"kernel"`
	GoVersion string `json:"go_version"`
	WorkDir   string `json:"work_dir"`
	WorkFS    string `json:"work_fs"`
	WorkDev   string `json:"work_device"`
	Root      bool   `json:"root"`
	Tools     string `json:"tools"`
}

var fsMagic = map[int64]string{
	0xEF53: "ext4", 0x58465342: "xfs", 0x9123683E: "btrfs", 0x01021994: "tmpfs",
	0x794c7630: "overlay", 0x65735546: "fuse", 0x2FC12FC1: "zfs", 0x6969: "nfs", 0xF2F52010: "f2fs",
}

func gatherMachine(workDir string) machineInfo {
	m := machineInfo{Cores: runtime.NumCPU(), GoVersion: runtime.Version(), WorkDir: workDir, Root: isRoot}
	var u unix.Utsname
	if unix.Uname(&u) == nil {
		m.Kernel = unix.ByteSliceToString(u.Release[:])
	}
	if data, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(data), "\n") {
			if strings.HasPrefix(l, "model name") {
				_, v, _ := strings.Cut(l, ":")
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
	}
	var si unix.Sysinfo_t
	if unix.Sysinfo(&si) == nil {
		m.MemBytes = uint64(si.Totalram) * uint64(si.Unit)
	}
	var st unix.Statfs_t
	if unix.Statfs(workDir, &st) == nil {
		if n, ok := fsMagic[int64(st.Type)]; ok {
			m.WorkFS = n
		} else {
			m.WorkFS = fmt.Sprintf("fs magic %#x", st.Type)
		}
	}
	if out, err := exec.Command("findmnt", "-n", "-o", "FSTYPE,SOURCE,OPTIONS", "-T", workDir).Output(); err == nil {
		f := strings.Fields(string(out))
		if len(f) >= 2 {
			m.WorkFS = f[0]
			m.WorkDev = strings.Join(f[1:], " ")
		}
	}
	var tools []string
	for _, t := range []string{"fio", "rsync", "mkfs.btrfs", "fusermount3"} {
		v := "missing"
		if have(t) {
			v = "yes"
			if t == "fio" {
				if out, err := exec.Command("fio", "--version").Output(); err == nil {
					v = strings.TrimSpace(string(out))
				}
			}
		}
		tools = append(tools, t+"="+v)
	}
	m.Tools = strings.Join(tools, " ")
	return m
}
