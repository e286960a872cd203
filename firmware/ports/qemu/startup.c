/* Cortex-M3 start-up for mps2-an385: vector table, .data/.bss set-up, then main(). */
#include <stdint.h>
#include <string.h>

extern uint32_t _sidata, _sdata, _edata, _sbss, _ebss, _estack;
int main(void);
void SysTick_Handler(void);
void UART0_RX_Handler(void);

void Reset_Handler(void) {
    memcpy(&_sdata, &_sidata, (size_t)((char *)&_edata - (char *)&_sdata));
    memset(&_sbss, 0, (size_t)((char *)&_ebss - (char *)&_sbss));
    main();
    for (;;) {
    }
}

static void Fault_Handler(void) {
    /* A fault ends the board's life as a fault does on hardware: the tests see it stop. */
    for (;;) {
    }
}

static void Default_Handler(void) {
}

__attribute__((section(".isr_vector"), used))
static const void *const vector_table[16 + 32] = {
    &_estack,
    Reset_Handler,
    Fault_Handler, /* NMI */
    Fault_Handler, /* HardFault */
    Fault_Handler, /* MemManage */
    Fault_Handler, /* BusFault */
    Fault_Handler, /* UsageFault */
    0, 0, 0, 0,
    Default_Handler, /* SVCall */
    Default_Handler, /* DebugMon */
    0,
    Default_Handler, /* PendSV */
    SysTick_Handler,
    UART0_RX_Handler, /* IRQ 0: UART0 receive */
    [17 ... 47] = Default_Handler,
};
