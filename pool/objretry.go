package pool

import (
	"fmt"
	"os"
	"time"

	"github.com/snapfs/snapfs/objstore"
)

// GiveUpEnv names the environment variable that bounds how long one
// operation on an object store is retried (objstore.RetryPolicy.Total,
// default 2 minutes) before it fails: a synchronous member whose Put
// fails past it is degraded (reads and fsync go on with the other
// copies) and healed when a member check finds its store answering
// again. A shorter bound degrades a member sooner in an outage, a longer
// one rides out longer ones; the daemon reads it at each store's opening.
const GiveUpEnv = "SNAPFS_S3_GIVE_UP"

// retryFromEnv returns the store options GiveUpEnv asks for.
func retryFromEnv() ([]objstore.Option, error) {
	v := os.Getenv(GiveUpEnv)
	if v == "" {
		return nil, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		return nil, fmt.Errorf("%s=%q: want a duration such as 30s or 5m", GiveUpEnv, v)
	}
	p := objstore.DefaultRetry
	p.Total, p.Attempt = d, min(p.Attempt, d)
	p.OpenTotal = min(p.OpenTotal, d)
	return []objstore.Option{objstore.WithRetry(p)}, nil
}
