#include <unistd.h>

void mp_hal_set_interrupt_char(char c);
/* No GPIO: stands in for extmod/virtpin.h, which py/mphal.h would include otherwise. */
#define mp_hal_pin_obj_t void *
