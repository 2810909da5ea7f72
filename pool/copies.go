package pool

import "fmt"

// SetCopies changes how many copies new records get. It refuses more
// copies than the live members span failure domains (ErrTooFewDomains)
// and fewer than one. The new configuration is written to every live
// member's member.json (generation plus one), then to pool.json; appends
// after the call use it. Records already stored keep their copies until
// the store raises them (scrub, or a dedup hit on the chunk).
func (p *Pool) SetCopies(n int) error {
	if err := p.writable(); err != nil {
		return err
	}
	p.addMu.Lock()
	defer p.addMu.Unlock()
	cfg := p.Config()
	if n < 1 {
		return fmt.Errorf("pool: copies %d: must be at least 1", n)
	}
	domains := map[string]bool{}
	for _, mc := range cfg.Members {
		if !mc.Removed && !mc.Async {
			domains[mc.Domain] = true
		}
	}
	if n > len(domains) { // replicas never count toward copies
		return refuse(ErrTooFewDomains, "pool: copies %d needs %d failure domains, but the members span %d (add members on other devices, or label domains)",
			n, n, len(domains))
	}
	if n == cfg.Copies {
		return nil
	}
	cfg.Copies = n
	if err := p.writeMemberConfigs(cfg, ^uint16(0)); err != nil {
		return err
	}
	if err := writeConfig(p.fs, p.dir, cfg, false); err != nil {
		return fmt.Errorf("pool: set copies: write %s: %w", poolFile, err)
	}
	p.cfgMu.Lock()
	p.cfg.Copies = n
	p.cfgMu.Unlock()
	return nil
}

// copies is the configured number of copies of each new record.
func (p *Pool) copies() int {
	p.cfgMu.RLock()
	defer p.cfgMu.RUnlock()
	return p.cfg.Copies
}
