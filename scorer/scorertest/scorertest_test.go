package scorertest

import "testing"

const badgerRace = `==================
WARNING: DATA RACE
Read at 0x00c000123456 by goroutine 88:
  github.com/dgraph-io/badger/v4.(*DB).MaxVersion()
      /root/go/pkg/mod/github.com/dgraph-io/badger/v4@v4.8.0/db.go:1010 +0x44
  github.com/dgraph-io/badger/v4.(*valueLog).rewrite()
      /root/go/pkg/mod/github.com/dgraph-io/badger/v4@v4.8.0/value.go:200 +0x99

Previous write at 0x00c000123456 by goroutine 12:
  github.com/dgraph-io/badger/v4/skl.(*Skiplist).Put()
      /root/go/pkg/mod/github.com/dgraph-io/badger/v4@v4.8.0/skl/skl.go:300 +0x11
  github.com/dgraph-io/badger/v4.(*memTable).Put()
      /root/go/pkg/mod/github.com/dgraph-io/badger/v4@v4.8.0/memtable.go:200 +0x22

Goroutine 88 (running) created at:
  github.com/falco-scorer/falco-scorer/store.(*DB).Maintain()
      /work/main/store/db.go:500 +0x33
==================
`

const ownRace = `==================
WARNING: DATA RACE
Write at 0x00c000999999 by goroutine 7:
  github.com/falco-scorer/falco-scorer/store.(*journal).append()
      /work/main/store/journal.go:100 +0x10

Previous read at 0x00c000999999 by goroutine 9:
  github.com/dgraph-io/badger/v4.(*DB).Update()
      /root/go/pkg/mod/github.com/dgraph-io/badger/v4@v4.8.0/txn.go:800 +0x10

Goroutine 7 (running) created at:
  main.main()
      /work/main/cmd/falco-scorer/main.go:10 +0x1
==================
`

func TestOwnDataRaces(t *testing.T) {
	own, dep := OwnDataRaces("log line\n" + badgerRace + "more\n" + ownRace)
	if len(own) != 1 || len(dep) != 1 {
		t.Fatalf("OwnDataRaces = %d own, %d third-party; want 1 and 1", len(own), len(dep))
	}
	if own, dep := OwnDataRaces("no race here"); len(own)+len(dep) != 0 {
		t.Errorf("OwnDataRaces(clean) = %v, %v; want none", own, dep)
	}
}
