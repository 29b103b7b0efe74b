// libsystemd: sd_notify, the journal and sd-bus. Only the non-variadic entry points are usable
// from Swift (sd_notify, sd_journal_sendv, sd_journal_stream_fd, sd_bus_message_append_basic,
// sd_bus_message_read_basic, sd_bus_call); format in Swift.
#pragma once
#include <systemd/sd-bus.h>
#include <systemd/sd-daemon.h>
#include <systemd/sd-journal.h>
