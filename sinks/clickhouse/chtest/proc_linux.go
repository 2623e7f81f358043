package chtest

import "syscall"

// sysProcAttr has the kernel kill the server when the test binary dies (e.g. killed by
// go test's timeout), so that no server outlives its test.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
