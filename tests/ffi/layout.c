/* Test-only: the sizes of the core's structs, so the Rust declarations can be checked. */
#include "hs_core.h"

size_t hs_test_sizeof_writer(void) { return sizeof(hs_writer_t); }
size_t hs_test_sizeof_area(void) { return sizeof(hs_area_t); }
size_t hs_test_sizeof_figures(void) { return sizeof(hs_figures_t); }
size_t hs_test_sizeof_system_heap(void) { return sizeof(hs_system_heap_t); }
size_t hs_test_sizeof_tracker(void) { return sizeof(hs_tracker_t); }
