/*
 * A RAM file table for a board without a filesystem: files live in static RAM (not the GC heap,
 * so they do not show in heap snapshots) and survive a soft reset, as files on a board's flash
 * do. `import` finds modules and packages in it; boot.py and main.py run from it at start-up.
 *
 *   import ramfs
 *   ramfs.write("pkg/__init__.py", "import pkg.a\n")
 *   ramfs.read("pkg/__init__.py"); ramfs.listdir(); ramfs.remove("pkg/__init__.py"); ramfs.free()
 */
#include <string.h>

#include "py/builtin.h"
#include "py/lexer.h"
#include "py/mperrno.h"
#include "py/runtime.h"

#define RAMFS_FILES (32)
#define RAMFS_NAME_MAX (64)
#define RAMFS_BYTES (32 * 1024)

typedef struct {
    char name[RAMFS_NAME_MAX];
    size_t offset;
    size_t len;
} ramfs_file_t;

static ramfs_file_t ramfs_files[RAMFS_FILES];
static size_t ramfs_count;
static char ramfs_data[RAMFS_BYTES];
static size_t ramfs_used;

static ramfs_file_t *ramfs_find(const char *name, size_t len) {
    for (size_t i = 0; i < ramfs_count; i++) {
        if (strlen(ramfs_files[i].name) == len && memcmp(ramfs_files[i].name, name, len) == 0) {
            return &ramfs_files[i];
        }
    }
    return NULL;
}

static void ramfs_delete(ramfs_file_t *f) {
    size_t offset = f->offset, len = f->len;
    memmove(ramfs_data + offset, ramfs_data + offset + len, ramfs_used - offset - len);
    ramfs_used -= len;
    memmove(f, f + 1, (size_t)(&ramfs_files[ramfs_count] - (f + 1)) * sizeof(*f));
    ramfs_count--;
    for (size_t i = 0; i < ramfs_count; i++) {
        if (ramfs_files[i].offset > offset) {
            ramfs_files[i].offset -= len;
        }
    }
}

mp_import_stat_t mp_import_stat(const char *path) {
    size_t len = strlen(path);
    if (ramfs_find(path, len) != NULL) {
        return MP_IMPORT_STAT_FILE;
    }
    for (size_t i = 0; i < ramfs_count; i++) {
        if (strncmp(ramfs_files[i].name, path, len) == 0 && ramfs_files[i].name[len] == '/') {
            return MP_IMPORT_STAT_DIR;
        }
    }
    return MP_IMPORT_STAT_NO_EXIST;
}

mp_lexer_t *mp_lexer_new_from_file(qstr filename) {
    size_t len;
    const char *name = (const char *)qstr_data(filename, &len);
    ramfs_file_t *f = ramfs_find(name, len);
    if (f == NULL) {
        mp_raise_OSError(MP_ENOENT);
    }
    /* Read in place: the file table is not touched while code runs from it. */
    return mp_lexer_new_from_str_len(filename, ramfs_data + f->offset, f->len, 0);
}

mp_obj_t mp_builtin_open(size_t n_args, const mp_obj_t *args, mp_map_t *kwargs) {
    mp_raise_msg(&mp_type_OSError, MP_ERROR_TEXT("no filesystem: use the ramfs module"));
}
MP_DEFINE_CONST_FUN_OBJ_KW(mp_builtin_open_obj, 1, mp_builtin_open);

static mp_obj_t ramfs_write(mp_obj_t name_in, mp_obj_t data_in) {
    size_t name_len;
    const char *name = mp_obj_str_get_data(name_in, &name_len);
    mp_buffer_info_t data;
    mp_get_buffer_raise(data_in, &data, MP_BUFFER_READ);
    if (name_len == 0 || name_len >= RAMFS_NAME_MAX) {
        mp_raise_ValueError(MP_ERROR_TEXT("file name too long"));
    }
    ramfs_file_t *old = ramfs_find(name, name_len);
    size_t free_bytes = RAMFS_BYTES - ramfs_used + (old != NULL ? old->len : 0);
    if (data.len > free_bytes || (old == NULL && ramfs_count == RAMFS_FILES)) {
        mp_raise_OSError(MP_ENOSPC);
    }
    if (old != NULL) {
        ramfs_delete(old);
    }
    ramfs_file_t *f = &ramfs_files[ramfs_count++];
    memcpy(f->name, name, name_len);
    f->name[name_len] = '\0';
    f->offset = ramfs_used;
    f->len = data.len;
    memcpy(ramfs_data + ramfs_used, data.buf, data.len);
    ramfs_used += data.len;
    return MP_OBJ_NEW_SMALL_INT(data.len);
}
static MP_DEFINE_CONST_FUN_OBJ_2(ramfs_write_obj, ramfs_write);

static ramfs_file_t *ramfs_find_raise(mp_obj_t name_in) {
    size_t len;
    const char *name = mp_obj_str_get_data(name_in, &len);
    ramfs_file_t *f = ramfs_find(name, len);
    if (f == NULL) {
        mp_raise_OSError(MP_ENOENT);
    }
    return f;
}

static mp_obj_t ramfs_read(mp_obj_t name_in) {
    ramfs_file_t *f = ramfs_find_raise(name_in);
    return mp_obj_new_str(ramfs_data + f->offset, f->len);
}
static MP_DEFINE_CONST_FUN_OBJ_1(ramfs_read_obj, ramfs_read);

static mp_obj_t ramfs_remove(mp_obj_t name_in) {
    ramfs_delete(ramfs_find_raise(name_in));
    return mp_const_none;
}
static MP_DEFINE_CONST_FUN_OBJ_1(ramfs_remove_obj, ramfs_remove);

static mp_obj_t ramfs_listdir(void) {
    mp_obj_t list = mp_obj_new_list(0, NULL);
    for (size_t i = 0; i < ramfs_count; i++) {
        mp_obj_list_append(list, mp_obj_new_str(ramfs_files[i].name, strlen(ramfs_files[i].name)));
    }
    return list;
}
static MP_DEFINE_CONST_FUN_OBJ_0(ramfs_listdir_obj, ramfs_listdir);

static mp_obj_t ramfs_free(void) {
    return MP_OBJ_NEW_SMALL_INT(RAMFS_BYTES - ramfs_used);
}
static MP_DEFINE_CONST_FUN_OBJ_0(ramfs_free_obj, ramfs_free);

static const mp_rom_map_elem_t ramfs_module_globals_table[] = {
    { MP_ROM_QSTR(MP_QSTR___name__), MP_ROM_QSTR(MP_QSTR_ramfs) },
    { MP_ROM_QSTR(MP_QSTR_write), MP_ROM_PTR(&ramfs_write_obj) },
    { MP_ROM_QSTR(MP_QSTR_read), MP_ROM_PTR(&ramfs_read_obj) },
    { MP_ROM_QSTR(MP_QSTR_remove), MP_ROM_PTR(&ramfs_remove_obj) },
    { MP_ROM_QSTR(MP_QSTR_listdir), MP_ROM_PTR(&ramfs_listdir_obj) },
    { MP_ROM_QSTR(MP_QSTR_free), MP_ROM_PTR(&ramfs_free_obj) },
};
static MP_DEFINE_CONST_DICT(ramfs_module_globals, ramfs_module_globals_table);

const mp_obj_module_t mp_module_ramfs = {
    .base = { &mp_type_module },
    .globals = (mp_obj_dict_t *)&ramfs_module_globals,
};

MP_REGISTER_MODULE(MP_QSTR_ramfs, mp_module_ramfs);
