package main

import "testing"

func TestMemoryLimit(t *testing.T) {
	tests := []struct {
		name        string
		configMiB   int
		cgroupBytes int64
		want        int64
	}{
		{"no config, no cgroup limit", 0, 0, 0},
		{"config wins over cgroup", 300, 1 << 30, 300 << 20},
		{"80 % of the cgroup limit", 0, 1 << 30, 858993456},
		{"config without cgroup", 512, 0, 512 << 20},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := memoryLimit(tt.configMiB, tt.cgroupBytes); got != tt.want {
				t.Errorf("memoryLimit(%d, %d) = %d, want %d", tt.configMiB, tt.cgroupBytes, got, tt.want)
			}
		})
	}
}

func TestParseCgroupLimit(t *testing.T) {
	tests := []struct {
		name, in string
		want     int64
	}{
		{"v2 unlimited", "max\n", 0},
		{"v2 limit", "1073741824\n", 1 << 30},
		{"v1 unlimited", "9223372036854771712\n", 0},
		{"v1 limit", "536870912", 512 << 20},
		{"garbage", "lots", 0},
		{"empty", "", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := parseCgroupLimit(tt.in); got != tt.want {
				t.Errorf("parseCgroupLimit(%q) = %d, want %d", tt.in, got, tt.want)
			}
		})
	}
}
