/*
 * heapscope's Cortex-M3 test port: main loop with soft reset, UART0 console, SysTick.
 * qemu-system-arm -M mps2-an385 -nographic -kernel firmware.elf
 */
#include <stdint.h>
#include <string.h>

#include "py/builtin.h"
#include "py/compile.h"
#include "py/gc.h"
#include "py/mperrno.h"
#include "py/mphal.h"
#include "py/runtime.h"
#include "py/stackctrl.h"
#include "shared/readline/readline.h"
#include "shared/runtime/gchelper.h"
#include "shared/runtime/pyexec.h"

/* ---- mps2-an385 peripherals ---- */

#define REG32(addr) (*(volatile uint32_t *)(addr))
#define UART0_BASE 0x40004000u
#define UART_DATA REG32(UART0_BASE + 0x00)
#define UART_STATE REG32(UART0_BASE + 0x04)
#define UART_CTRL REG32(UART0_BASE + 0x08)
#define UART_INTSTATUS REG32(UART0_BASE + 0x0c)
#define UART_BAUDDIV REG32(UART0_BASE + 0x10)
#define UART_STATE_TXFULL (1u << 0)
#define UART_STATE_RXFULL (1u << 1)
#define UART_CTRL_TX_EN (1u << 0)
#define UART_CTRL_RX_EN (1u << 1)
#define UART_CTRL_RX_INT_EN (1u << 3)
#define UART_INT_RX (1u << 1)

#define SYST_CSR REG32(0xe000e010u)
#define SYST_RVR REG32(0xe000e014u)
#define SYST_CVR REG32(0xe000e018u)
#define NVIC_ISER0 REG32(0xe000e100u)

#define CPU_HZ 25000000u /* the board's clock, as QEMU models it */

/* ---- Console: UART0, received bytes queued by its interrupt ---- */

static uint8_t rx_buf[512];
static volatile uint32_t rx_head, rx_tail;
static volatile int interrupt_char = -1;

void mp_hal_set_interrupt_char(int c) {
    interrupt_char = c;
}

void UART0_RX_Handler(void) {
    UART_INTSTATUS = UART_INT_RX;
    while (UART_STATE & UART_STATE_RXFULL) {
        uint8_t c = (uint8_t)UART_DATA;
        if (c == interrupt_char) {
            mp_sched_keyboard_interrupt();
        } else if (rx_head - rx_tail < sizeof(rx_buf)) {
            rx_buf[rx_head % sizeof(rx_buf)] = c;
            rx_head++;
        }
    }
}

int mp_hal_stdin_rx_chr(void) {
    for (;;) {
        if (rx_tail != rx_head) {
            int c = rx_buf[rx_tail % sizeof(rx_buf)];
            rx_tail++;
            return c;
        }
        mp_event_wait_indefinite();
    }
}

mp_uint_t mp_hal_stdout_tx_strn(const char *str, size_t len) {
    for (size_t i = 0; i < len; i++) {
        while (UART_STATE & UART_STATE_TXFULL) {
        }
        UART_DATA = (uint8_t)str[i];
    }
    return len;
}

uintptr_t mp_hal_stdio_poll(uintptr_t poll_flags) {
    return 0;
}

/* ---- Time: SysTick every millisecond; it also drives heapscope.start() ---- */

static volatile uint32_t ticks_ms;
static volatile uint32_t heapscope_period_ms, heapscope_elapsed_ms;
static void (*volatile heapscope_tick)(void);

void SysTick_Handler(void) {
    ticks_ms++;
    void (*tick)(void) = heapscope_tick;
    if (tick != NULL && ++heapscope_elapsed_ms >= heapscope_period_ms) {
        heapscope_elapsed_ms = 0;
        tick();
    }
}

bool mp_heapscope_port_timer_start(uint32_t period_ms, void (*tick)(void)) {
    heapscope_tick = NULL;
    heapscope_period_ms = period_ms;
    heapscope_elapsed_ms = 0;
    heapscope_tick = tick;
    return true;
}

void mp_heapscope_port_timer_stop(void) {
    heapscope_tick = NULL;
}

mp_uint_t mp_hal_ticks_ms(void) {
    return ticks_ms;
}

mp_uint_t mp_hal_ticks_us(void) {
    uint32_t ms, val;
    do {
        ms = ticks_ms;
        val = SYST_CVR;
    } while (ms != ticks_ms);
    return ms * 1000u + (SYST_RVR - val) / (CPU_HZ / 1000000u);
}

mp_uint_t mp_hal_ticks_cpu(void) {
    return mp_hal_ticks_us();
}

uint64_t mp_hal_time_ns(void) {
    return (uint64_t)mp_hal_ticks_us() * 1000u;
}

void mp_hal_delay_ms(mp_uint_t ms) {
    uint32_t start = ticks_ms;
    while (ticks_ms - start < ms) {
        mp_event_wait_ms(ms);
    }
}

void mp_hal_delay_us(mp_uint_t us) {
    uint32_t start = mp_hal_ticks_us();
    while (mp_hal_ticks_us() - start < us) {
        mp_event_handle_nowait();
    }
}

/* ---- GC and faults ---- */

void gc_collect(void) {
    gc_collect_start();
    gc_helper_collect_regs_and_stack();
    gc_collect_end();
}

void nlr_jump_fail(void *val) {
    mp_hal_stdout_tx_str("FATAL: uncaught NLR\r\n");
    for (;;) {
    }
}

void __assert_func(const char *file, int line, const char *func, const char *expr) {
    mp_hal_stdout_tx_str("FATAL: assertion failed\r\n");
    for (;;) {
    }
}

/* ---- Main: boot, REPL, soft reset ---- */

extern uint32_t _sstack, _estack;

/* The GC heap of a NodeMCU-32S (ESP32): GC total 119,360 bytes, as `-X heapsize=122160` gives
 * on the 32-bit host port. */
static char heap[122160] __attribute__((aligned(16)));

int main(void) {
    UART_BAUDDIV = 16;
    UART_CTRL = UART_CTRL_TX_EN | UART_CTRL_RX_EN | UART_CTRL_RX_INT_EN;
    NVIC_ISER0 = 1u << 0; /* UART0 receive */
    SYST_RVR = CPU_HZ / 1000u - 1u;
    SYST_CVR = 0;
    SYST_CSR = 7; /* processor clock, interrupt, enable */

    for (;;) {
        mp_cstack_init_with_top(&_estack, (char *)&_estack - (char *)&_sstack - 1024);
        gc_init(heap, heap + sizeof(heap));
        mp_init();
        readline_init0();

        /* As boards do: boot.py, then main.py, from the file table (they survive soft resets). */
        if (pyexec_file_if_exists("boot.py") & PYEXEC_FORCED_EXIT) {
            goto soft_reset;
        }
        if (pyexec_mode_kind == PYEXEC_MODE_FRIENDLY_REPL && (pyexec_file_if_exists("main.py") & PYEXEC_FORCED_EXIT)) {
            goto soft_reset;
        }
        for (;;) {
            int ret = pyexec_mode_kind == PYEXEC_MODE_RAW_REPL ? pyexec_raw_repl() : pyexec_friendly_repl();
            if (ret & PYEXEC_FORCED_EXIT) {
                break;
            }
        }
    soft_reset:
        mp_hal_stdout_tx_str("MPY: soft reboot\r\n");
        gc_sweep_all();
        mp_deinit();
    }
}
