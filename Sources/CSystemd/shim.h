// libsystemd: sd_notify and the journal. Only the non-variadic entry points are usable
// from Swift (sd_notify, sd_journal_sendv, sd_journal_stream_fd); format in Swift.
#pragma once
#include <systemd/sd-daemon.h>
#include <systemd/sd-journal.h>
