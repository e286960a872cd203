# What both test ports' Makefiles share. A port sets SRC_C and SHARED_SRC_C (beyond the common
# ones) and PORT_CFLAGS (before this: the module's flags are fixed here), then includes this;
# it ends with py/mkrules.mk.
MPY_DIR ?= $(error MPY_DIR: the MicroPython sdist's folder (scripts/firmware downloads it))
TOP := $(abspath $(MPY_DIR))
HEAPSCOPE_FIRMWARE := $(abspath $(CURDIR)/../..)
PORT_COMMON := $(abspath $(CURDIR)/../common)

QSTR_DEFS =
USER_C_MODULES = $(HEAPSCOPE_FIRMWARE)

include $(TOP)/py/mkenv.mk
include $(TOP)/py/py.mk

INC += -I. -I$(TOP) -I$(BUILD) -I$(PORT_COMMON)
CFLAGS += $(INC) $(PORT_CFLAGS) -std=gnu99 -Wall -Werror -Wdouble-promotion -Os -g -fdata-sections -ffunction-sections
LDFLAGS += -Wl,--gc-sections

SRC_C += $(PORT_COMMON)/modtime.c
SHARED_SRC_C += \
	shared/readline/readline.c \
	shared/runtime/gchelper_generic.c \
	shared/runtime/pyexec.c \
	shared/runtime/sys_stdio_mphal.c

OBJ = $(PY_O)
OBJ += $(addprefix $(BUILD)/, $(notdir $(SRC_C:.c=.o)))
OBJ += $(addprefix $(BUILD)/, $(SHARED_SRC_C:.c=.o))
SRC_QSTR += $(SRC_C) $(addprefix $(TOP)/, $(SHARED_SRC_C))

vpath %.c . $(PORT_COMMON) $(TOP)

# The heapscope module: every warning an error, on every port, and no extmod/ stand-in in sight
# (it must build without extmod/: the sdist has none). -Wno-unused-parameter: MicroPython's
# own headers have unused parameters; its ports do the same.
$(BUILD)/heapscope/%.o: CFLAGS := $(filter-out -I$(PORT_COMMON),$(CFLAGS)) -Wextra -Wno-unused-parameter -Werror
