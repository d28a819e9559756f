#pragma once

#include <string>

namespace logbook::store {

// A new event id: a version 7 UUID (RFC 9562) in canonical lowercase form.
// The first 48 bits are the Unix time in milliseconds and the remaining 74
// are random, so ids made close together in time sort close together. That
// keeps inserts into the event id index on a few hot pages at its right end,
// where random (version 4) ids touch a page anywhere in it per event.
// Thread-safe; each thread has its own generator, seeded from the OS.
std::string NewUuid();

}  // namespace logbook::store
