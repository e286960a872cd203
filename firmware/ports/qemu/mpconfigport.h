/*
 * heapscope's Cortex-M3 test port (qemu-system-arm -M mps2-an385): a board as the tests see
 * one. REPL on UART0 (friendly, raw, raw paste), soft reset on Ctrl-D, SysTick behind
 * heapscope.start(), a GC heap the size of a NodeMCU-32S's (119,360 bytes), no filesystem but a
 * small RAM file table (the `ramfs` module) to import from.
 */
#include <stdint.h>

#define MICROPY_MEM_STATS (0) /* as ESP32: mem_info() starts with "stack:" */
#define MICROPY_FLOAT_IMPL (MICROPY_FLOAT_IMPL_FLOAT)
#define MICROPY_GCREGS_SETJMP (0)

#define MICROPY_PY_SYS_PLATFORM "qemu"

/* heapscope.start() runs on SysTick (main.c). */
#define MICROPY_HEAPSCOPE_PORT_TIMER (1)

#define MICROPY_HW_BOARD_NAME "heapscope test port mps2-an385"
#define MICROPY_HW_MCU_NAME "Cortex-M3"

#define MICROPY_ALLOC_PATH_MAX (128)

/* Interrupts (UART receive, SysTick) schedule callbacks: the atomic section masks them. */
static inline uint32_t port_disable_irq(void) {
    uint32_t state;
    __asm volatile ("mrs %0, primask\n cpsid i" : "=r" (state) : : "memory");
    return state;
}
static inline void port_enable_irq(uint32_t state) {
    __asm volatile ("msr primask, %0" : : "r" (state) : "memory");
}
#define MICROPY_BEGIN_ATOMIC_SECTION() port_disable_irq()
#define MICROPY_END_ATOMIC_SECTION(state) port_enable_irq(state)
#define MICROPY_INTERNAL_WFE(TIMEOUT_MS) __asm volatile ("wfi")

#include "../common/mpconfigcommon.h"
