package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// clockTick is USER_HZ, the unit of /proc/<pid>/stat's CPU times; it is 100
// on every Linux the bench is meant for.
const clockTick = 10 * time.Millisecond

// cpuTimes is the CPU time (user + system) used so far by the Postgres
// backends of one database, the server process and the bench itself. The
// difference of two snapshots says where the CPU of a measured window
// went: on a 2-core machine that is what bounds every figure.
type cpuTimes struct {
	postgres, server, bench time.Duration
}

func (c cpuTimes) sub(o cpuTimes) cpuTimes {
	return cpuTimes{postgres: c.postgres - o.postgres, server: c.server - o.server, bench: c.bench - o.bench}
}

func (c cpuTimes) add(o cpuTimes) cpuTimes {
	return cpuTimes{postgres: c.postgres + o.postgres, server: c.server + o.server, bench: c.bench + o.bench}
}

// cpuMeter measures the CPU (sampleCPU) of one window: from startCPU to
// its stop.
type cpuMeter struct {
	db    string
	pid   int
	start cpuTimes
	// used is what the window used, once stopped.
	used cpuTimes
}

// startCPU starts a window over the backends of database db, the process
// pid (0 for none) and the bench.
func startCPU(db string, pid int) (*cpuMeter, error) {
	start, err := sampleCPU(db, pid)
	if err != nil {
		return nil, err
	}
	return &cpuMeter{db: db, pid: pid, start: start}, nil
}

// stop ends the window.
func (m *cpuMeter) stop() error {
	end, err := sampleCPU(m.db, m.pid)
	if err != nil {
		return err
	}
	m.used = end.sub(m.start)
	return nil
}

// perTask formats the CPU per task of a window that did n tasks.
func (c cpuTimes) perTask(n int) string {
	if n == 0 {
		return ""
	}
	us := func(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) / float64(n) }
	return fmt.Sprintf("pg %.0f + server %.0f + client %.0f µs", us(c.postgres), us(c.server), us(c.bench))
}

// sampleCPU reads the CPU times of the backends connected to database
// dbName, of the process serverPID (0 for none) and of this process.
func sampleCPU(dbName string, serverPID int) (cpuTimes, error) {
	var c cpuTimes
	var err error
	// The bench's children count too: wrk, the enqueue figures' load
	// generator, runs as one within the window and is reaped in it.
	if c.bench, err = procCPU(os.Getpid(), true); err != nil {
		return c, err
	}
	if serverPID != 0 {
		if c.server, err = procCPU(serverPID, false); err != nil {
			return c, err
		}
	}
	pids, err := backendPIDs(dbName)
	if err != nil {
		return c, err
	}
	for _, pid := range pids {
		// A backend may exit between listing and reading: it no longer
		// counts, which only understates Postgres's share.
		if d, err := procCPU(pid, false); err == nil {
			c.postgres += d
		}
	}
	return c, nil
}

// procCPU returns utime + stime of a process, and with children the times
// of the children it has reaped.
func procCPU(pid int, children bool) (time.Duration, error) {
	raw, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return 0, fmt.Errorf("read CPU time of pid %d: %w", pid, err)
	}
	// The command name, field 2, is in parentheses and may hold spaces:
	// fields are counted after its closing parenthesis.
	i := bytes.LastIndexByte(raw, ')')
	if i < 0 {
		return 0, fmt.Errorf("parse /proc/%d/stat", pid)
	}
	fields := strings.Fields(string(raw[i+1:]))
	// utime, stime, cutime and cstime are fields 14 to 17, that is 11 to
	// 14 after field 2.
	if len(fields) < 15 {
		return 0, fmt.Errorf("parse /proc/%d/stat: %d fields", pid, len(fields))
	}
	last := 12
	if children {
		last = 14
	}
	var ticks int64
	for _, f := range fields[11 : last+1] {
		n, err := strconv.ParseInt(f, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("parse /proc/%d/stat CPU times", pid)
		}
		ticks += n
	}
	return time.Duration(ticks) * clockTick, nil
}

// backendPIDs lists the Postgres backends connected to dbName, found by
// the process title Postgres gives them ("postgres: ... user dbname host").
// It finds them only when Postgres runs on this machine, as make bench's
// local cluster does; otherwise Postgres's share reads as zero.
func backendPIDs(dbName string) ([]int, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, fmt.Errorf("list processes: %w", err)
	}
	needle := []byte(" " + dbName + " ")
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || !bytes.HasPrefix(cmdline, []byte("postgres: ")) {
			continue
		}
		if bytes.Contains(cmdline, needle) {
			pids = append(pids, pid)
		}
	}
	return pids, nil
}
