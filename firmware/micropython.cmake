# Entry point for CMake ports:
#   make USER_C_MODULES=/path/to/heapscope/firmware/micropython.cmake
include(${CMAKE_CURRENT_LIST_DIR}/heapscope/micropython.cmake)
