package store

import (
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

func TestConfigYAMLDurations(t *testing.T) {
	cfg := DefaultConfig()
	in := "dir: /var/lib/falco-scorer\ngc_interval: 90s\nimage_ttl: 720h\ngroup_commit_max_delay: 2ms\n"
	if err := yaml.Unmarshal([]byte(in), &cfg); err != nil {
		t.Fatalf("yaml.Unmarshal = %v", err)
	}
	if cfg.GCInterval != 90*time.Second || cfg.ImageTTL != 720*time.Hour || cfg.GroupCommitMaxDelay != 2*time.Millisecond {
		t.Errorf("decoded %+v", cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Errorf("Validate() = %v", err)
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name   string
		modify func(*Config)
		want   string
	}{
		{"default", func(*Config) {}, ""},
		{"in memory without dir", func(c *Config) { c.Dir = ""; c.InMemory = true }, ""},
		{"no dir", func(c *Config) { c.Dir = "" }, "dir: empty"},
		{"delay", func(c *Config) { c.GroupCommitMaxDelay = 2 * time.Second }, "group_commit_max_delay:"},
		{"sync interval above 10s", func(c *Config) { c.JournalSyncInterval = 11 * time.Second }, "journal_sync_interval:"},
		{"negative sync interval", func(c *Config) { c.JournalSyncInterval = -time.Second }, "journal_sync_interval:"},
		{"sub-millisecond sync interval", func(c *Config) { c.JournalSyncInterval = time.Microsecond }, "journal_sync_interval:"},
		{"sync interval 100ms", func(c *Config) { c.JournalSyncInterval = 100 * time.Millisecond }, ""},
		{"events", func(c *Config) { c.GroupCommitMaxEvents = 0 }, "group_commit_max_events:"},
		{"bytes", func(c *Config) { c.GroupCommitMaxBytes = 10 << 20 }, "group_commit_max_bytes:"},
		{"event size", func(c *Config) { c.MaxEventBytes = 1 }, "max_event_bytes:"},
		{"free", func(c *Config) { c.MinFreeBytes = -1 }, "min_free_bytes:"},
		// 0 used to disable the guard, and a full disk then killed the
		// process with SIGBUS on every restart (Badger's mmapped files).
		{"free 0", func(c *Config) { c.MinFreeBytes = 0 }, "min_free_bytes:"},
		{"free 1 MiB", func(c *Config) { c.MinFreeBytes = 1 << 20 }, "min_free_bytes:"},
		{"free 64 MiB", func(c *Config) { c.MinFreeBytes = 64 << 20 }, ""},
		{"free 0 in memory", func(c *Config) { c.MinFreeBytes = 0; c.InMemory = true }, ""},
		{"gc", func(c *Config) { c.GCInterval = 0 }, "gc_interval:"},
		{"ratio", func(c *Config) { c.GCDiscardRatio = 1 }, "gc_discard_ratio:"},
		{"ttl", func(c *Config) { c.ImageTTL = -1 }, "image_ttl:"},
		{"retention", func(c *Config) { c.BucketRetention = -1 }, "bucket_retention:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := DefaultConfig()
			tt.modify(&c)
			err := c.Validate()
			if tt.want == "" && err != nil || tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)) {
				t.Errorf("Validate() = %v, want %q", err, tt.want)
			}
		})
	}
}

// TestMinFreeFloorCoversBadger keeps MinFreeFloor's arithmetic true to the
// Badger options Open sets: one value-log file, the memtables' write-ahead
// logs and one level-0 flush must fit in it.
func TestMinFreeFloorCoversBadger(t *testing.T) {
	d := openAt(t, t.TempDir())
	o := d.bdb.Opts()
	need := o.ValueLogFileSize + int64(o.NumMemtables)*o.MemTableSize + o.MemTableSize
	if need > MinFreeFloor {
		t.Errorf("value log %d + %d memtables of %d + one flush = %d bytes, above MinFreeFloor %d: raise the floor",
			o.ValueLogFileSize, o.NumMemtables, o.MemTableSize, need, MinFreeFloor)
	}
}
