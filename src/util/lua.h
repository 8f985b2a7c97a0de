/*
 * lua.h — the Lua scripts rkbridge runs in Redis, compiled in from the .lua files under src/
 * (cmake/embed_lua.cmake generates the definitions). Each is NUL-terminated; _len excludes
 * the NUL.
 *
 *   rkb_lua_apply    src/sink/apply.lua      the exactly-once apply script's body (sink/eos.c)
 *   rkb_lua_cache    src/process/cache.lua   the versioned cache compare-and-set (process/cache.h)
 *   rkb_lua_window   src/process/window.lua  windowed aggregation (process/window.h)
 *   rkb_lua_window_ack  src/process/window_ack.lua  removes emitted window results
 */
#ifndef RKB_UTIL_LUA_H
#define RKB_UTIL_LUA_H

#include <stddef.h>

extern const char rkb_lua_apply[];
extern const size_t rkb_lua_apply_len;
extern const char rkb_lua_cache[];
extern const size_t rkb_lua_cache_len;
extern const char rkb_lua_window[];
extern const size_t rkb_lua_window_len;
extern const char rkb_lua_window_ack[];
extern const size_t rkb_lua_window_ack_len;

#endif
