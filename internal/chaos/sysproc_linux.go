package chaos

import "syscall"

// sysProcAttr makes a child die with the test process, so a failed or
// interrupted test leaves no servers or workers behind.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
