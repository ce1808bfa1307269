// Small JSON text helpers for what the engine writes by hand (safetensors headers,
// repro-train --json), so that the engine and repro-train need no JSON library on a
// GPU host that has only LibTorch, Abseil, xxHash and zlib.
//
// Thread safety: free functions with no shared state.
#ifndef REPRO_WORKER_ENGINE_JSON_TEXT_H_
#define REPRO_WORKER_ENGINE_JSON_TEXT_H_

#include <string>
#include <string_view>

namespace repro::engine {

// A JSON string literal, quotes included: '"' and '\\' escaped, control characters as
// \u00XX; other bytes (UTF-8) pass through unchanged.
std::string JsonQuote(std::string_view text);

// A JSON number that reads back as the same double (up to 17 significant digits);
// NaN and infinities, which JSON cannot hold, become null.
std::string JsonNumber(double value);

}  // namespace repro::engine

#endif  // REPRO_WORKER_ENGINE_JSON_TEXT_H_
