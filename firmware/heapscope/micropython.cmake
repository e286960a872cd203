# heapscope user C module for CMake-based ports (esp32, rp2).
add_library(usermod_heapscope INTERFACE)

target_sources(usermod_heapscope INTERFACE
    ${CMAKE_CURRENT_LIST_DIR}/modheapscope.c
    ${CMAKE_CURRENT_LIST_DIR}/hs_core.c
)

target_include_directories(usermod_heapscope INTERFACE
    ${CMAKE_CURRENT_LIST_DIR}
)

target_link_libraries(usermod INTERFACE usermod_heapscope)
