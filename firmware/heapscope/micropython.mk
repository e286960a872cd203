# heapscope user C module for make-based ports (unix, stm32, ...):
#   make USER_C_MODULES=/path/to/heapscope/firmware
HEAPSCOPE_MOD_DIR := $(USERMOD_DIR)

SRC_USERMOD_C += $(HEAPSCOPE_MOD_DIR)/modheapscope.c
SRC_USERMOD_C += $(HEAPSCOPE_MOD_DIR)/hs_core.c
CFLAGS_USERMOD += -I$(HEAPSCOPE_MOD_DIR)
