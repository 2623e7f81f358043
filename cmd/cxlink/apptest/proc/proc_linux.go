package proc

import "syscall"

// sysProcAttr has the kernel kill the child when the test binary dies (e.g. at go test's
// timeout), so that no server outlives its test.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
