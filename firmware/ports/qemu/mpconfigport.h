/*
 * heapscope's Cortex-M3 test port (qemu-system-arm -M mps2-an385): a board as the tests see
 * one. REPL on UART0 (friendly, raw, raw paste), soft reset on Ctrl-D, SysTick behind
 * heapscope.start(), a GC heap the size of a NodeMCU-32S's (119,360 bytes), no filesystem but a
 * small RAM file table (the `ramfs` module) to import from.
 */
#include <stdint.h>

#define MICROPY_CONFIG_ROM_LEVEL (MICROPY_CONFIG_ROM_LEVEL_CORE_FEATURES)

#define MICROPY_ENABLE_GC (1)
#define MICROPY_ENABLE_FINALISER (1)
#define MICROPY_ENABLE_COMPILER (1)
#define MICROPY_HELPER_REPL (1)
#define MICROPY_REPL_AUTO_INDENT (1)
#define MICROPY_REPL_EMACS_KEYS (1)
#define MICROPY_ENABLE_SCHEDULER (1)
#define MICROPY_SCHEDULER_DEPTH (8)
#define MICROPY_KBD_EXCEPTION (1)
#define MICROPY_STACK_CHECK (1)
#define MICROPY_MEM_STATS (0) /* as ESP32: mem_info() starts with "stack:" */
#define MICROPY_ERROR_REPORTING (MICROPY_ERROR_REPORTING_DETAILED)
#define MICROPY_ENABLE_SOURCE_LINE (1)
#define MICROPY_FLOAT_IMPL (MICROPY_FLOAT_IMPL_FLOAT)
#define MICROPY_LONGINT_IMPL (MICROPY_LONGINT_IMPL_MPZ)
#define MICROPY_CAN_OVERRIDE_BUILTINS (1)
#define MICROPY_MODULE_BUILTIN_INIT (1)
#define MICROPY_USE_READLINE_HISTORY (1)
#define MICROPY_READLINE_HISTORY_SIZE (8)
#define MICROPY_GCREGS_SETJMP (0)

#define MICROPY_PY_BUILTINS_BYTEARRAY (1)
#define MICROPY_PY_BUILTINS_SET (1)
#define MICROPY_PY_BUILTINS_FROZENSET (1)
#define MICROPY_PY_BUILTINS_SLICE (1)
#define MICROPY_PY_BUILTINS_PROPERTY (1)
#define MICROPY_PY_BUILTINS_STR_UNICODE (1)
#define MICROPY_PY_BUILTINS_HELP (0)
#define MICROPY_PY_ARRAY (1)
#define MICROPY_PY_COLLECTIONS (1)
#define MICROPY_PY_GC (1)
#define MICROPY_PY_IO (0)
#define MICROPY_PY_MICROPYTHON_MEM_INFO (1)
#define MICROPY_PY_MICROPYTHON_HEAP_LOCKED (1)
#define MICROPY_PY_STRUCT (1)
#define MICROPY_PY_SYS (1)
#define MICROPY_PY_SYS_MODULES (1)
#define MICROPY_PY_SYS_EXIT (1)
#define MICROPY_PY_SYS_PATH (1)
#define MICROPY_PY_SYS_STDFILES (1)
#define MICROPY_PY_SYS_STDIO_BUFFER (1)
#define MICROPY_PY_SYS_PLATFORM "qemu"

/* heapscope.start() runs on SysTick (main.c). */
#define MICROPY_HEAPSCOPE_PORT_TIMER (1)

#define MICROPY_HW_BOARD_NAME "heapscope test port mps2-an385"
#define MICROPY_HW_MCU_NAME "Cortex-M3"

#define MP_STATE_PORT MP_STATE_VM
#define MICROPY_ALLOC_PATH_MAX (128)

typedef long mp_off_t;

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

#include <alloca.h>
