package snap

import (
	"fmt"
	"strings"
	"testing"

	"github.com/cockroachdb/datadriven"

	"github.com/snapfs/snapfs/store"
)

// TestLife runs the sequences in testdata/life: holds on snapshots and
// every destroy they refuse, and a volume's whole life (destroy, -r,
// rename) with its snapshots, branches and schedules. It understands the
// commands of TestDatasets, and:
//
//	hold at=DATASET@SNAP tag=T       place hold T
//	release at=DATASET@SNAP tag=T    release hold T
//	holds at=DATASET@SNAP            its holds' tags
//	volume-destroy vol=V [recursive]
//	volume-rename vol=V new=N
//	volume-create vol=V
//	schedule ds=DATASET tiers=T,T...  set a policy
//	schedules                        every policy
func TestLife(t *testing.T) {
	datadriven.Walk(t, "testdata/life", func(t *testing.T, path string) {
		m, st, _ := newTest(t)
		r := &lifeRunner{datasetRunner{m: m, st: st}}
		datadriven.RunTest(t, path, func(t *testing.T, d *datadriven.TestData) string {
			out, err := r.run(d)
			if err != nil {
				return "error: " + err.Error() + "\n"
			}
			return out
		})
	})
}

type lifeRunner struct{ datasetRunner }

func (r *lifeRunner) run(d *datadriven.TestData) (string, error) {
	ds, name, _ := strings.Cut(ddArg(d, "at"), "@")
	switch d.Cmd {
	case "hold":
		return "ok\n", r.m.Hold(ds, name, ddArg(d, "tag"))
	case "release":
		return "ok\n", r.m.Release(ds, name, ddArg(d, "tag"))
	case "holds":
		hs, err := r.m.Holds(ds, name)
		if err != nil {
			return "", err
		}
		if len(hs) == 0 {
			return "(none)\n", nil
		}
		var tags []string
		for _, h := range hs {
			tags = append(tags, h.Tag)
		}
		return strings.Join(tags, "\n") + "\n", nil
	case "volume-destroy":
		return "ok\n", r.m.DestroyVolume(ddArg(d, "vol"), ddFlag(d, "recursive"))
	case "volume-rename":
		return "ok\n", r.m.RenameVolume(ddArg(d, "vol"), ddArg(d, "new"))
	case "volume-create":
		_, err := r.st.CreateVolume(ddArg(d, "vol"), store.VolumeOptions{})
		return "ok\n", err
	case "schedule":
		tiers, err := ParseTiers(strings.Split(ddArg(d, "tiers"), ","))
		if err != nil {
			return "", err
		}
		_, err = r.m.SetSchedule(ddArg(d, "ds"), tiers)
		return "ok\n", err
	case "schedules":
		ps, err := r.m.Schedules()
		if err != nil {
			return "", err
		}
		var b strings.Builder
		for _, p := range ps {
			fmt.Fprintf(&b, "%s:", p.Dataset)
			for _, t := range p.Tiers {
				fmt.Fprintf(&b, " %s", t)
			}
			b.WriteString("\n")
		}
		if b.Len() == 0 {
			return "(none)\n", nil
		}
		return b.String(), nil
	case "volumes":
		vs, err := r.st.Volumes()
		if err != nil {
			return "", err
		}
		var names []string
		for _, v := range vs {
			names = append(names, v.Name)
		}
		return strings.Join(names, " ") + "\n", nil
	case "check":
		r.st.WaitBackground()
		if err := r.st.Check(); err != nil {
			return "", err
		}
		return "check ok\n", nil
	}
	return r.datasetRunner.run(d)
}
