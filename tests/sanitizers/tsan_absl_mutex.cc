// ThreadSanitizer builds only (REPRO_SANITIZE=thread): makes Debian's absl::Mutex
// visible to TSan in our code.
//
// Debian's Abseil is built without TSan, so absl::Mutex takes and releases its lock
// with atomics and futexes that TSan cannot see, and every field our code guards with
// an absl::Mutex (RunStore, Progress) would be reported as a data race between the
// gRPC threads that use it. Rather than suppress those reports, which would hide real
// races in the same code, this file defines the Mutex members our code calls; each
// tells TSan what happens (the __tsan_mutex_* annotations Abseil itself makes when it
// is built with TSan) and calls Abseil's own function, found with dlsym(RTLD_NEXT).
//
// The definitions are linked into each of our executables and compiled with
// -fvisibility=hidden, so only our code's calls come here: gRPC keeps calling Abseil
// directly (it is not instrumented, so it has nothing to report). Covered: Lock,
// Unlock, TryLock, ReaderLock, ReaderUnlock, ReaderTryLock, the destructor (what
// absl::MutexLock and absl::ReaderMutexLock use), and the waits that release the lock
// inside Abseil and take it again: Mutex::Await, LockWhen and CondVar::Wait, with their
// timeout and deadline forms. A wait is shown to TSan as an unlock before it and a lock
// after it; what Abseil runs meanwhile (the Condition, evaluated by whichever thread
// holds the lock) is ignored, as between the two halves of any annotated lock or unlock.
// The reader forms of the waits (ReaderLockWhen...) are not covered: our code has none.
#if !defined(__SANITIZE_THREAD__) && defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define __SANITIZE_THREAD__ 1
#endif
#endif
#ifndef __SANITIZE_THREAD__
#error "tsan_absl_mutex.cc is for REPRO_SANITIZE=thread builds only"
#endif

#include <dlfcn.h>
#include <sanitizer/tsan_interface.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "absl/base/options.h"
#include "absl/synchronization/mutex.h"

#if !ABSL_OPTION_USE_INLINE_NAMESPACE
#error "tsan_absl_mutex.cc expects Abseil's inline namespace (the default, and Debian's)"
#endif

namespace {

#define REPRO_STR2(x) #x
#define REPRO_STR(x) REPRO_STR2(x)

// Abseil's own definition of the member whose mangled name is "_ZN4absl" + Abseil's
// inline namespace (Debian's is "debian3") + `rest`; `rest` may refer to that
// namespace as "S0_" ("NS0_9ConditionE" is absl::<ns>::Condition).
template <typename Function>
Function Real(const char* rest) {
  const std::string ns = REPRO_STR(ABSL_OPTION_INLINE_NAMESPACE_NAME);
  const std::string symbol = "_ZN4absl" + std::to_string(ns.size()) + ns + rest;
  void* address = dlsym(RTLD_NEXT, symbol.c_str());
  if (address == nullptr) {
    std::fprintf(stderr, "tsan_absl_mutex: %s not found in Abseil\n", symbol.c_str());
    std::abort();
  }
  return reinterpret_cast<Function>(address);
}

// What TSan is told around a call that releases `mu` inside Abseil, waits, and holds
// it again when it returns.
void BeforeWait(void* mu) { __tsan_mutex_pre_unlock(mu, 0); }
void AfterWait(void* mu) {
  __tsan_mutex_post_unlock(mu, 0);
  __tsan_mutex_pre_lock(mu, 0);
  __tsan_mutex_post_lock(mu, 0, 0);
}

}  // namespace

namespace absl {
ABSL_NAMESPACE_BEGIN

void Mutex::Lock() {
  static const auto real = Real<void (*)(Mutex*)>("5Mutex4LockEv");
  __tsan_mutex_pre_lock(this, 0);
  real(this);
  __tsan_mutex_post_lock(this, 0, 0);
}

void Mutex::Unlock() {
  static const auto real = Real<void (*)(Mutex*)>("5Mutex6UnlockEv");
  __tsan_mutex_pre_unlock(this, 0);
  real(this);
  __tsan_mutex_post_unlock(this, 0);
}

bool Mutex::TryLock() {
  static const auto real = Real<bool (*)(Mutex*)>("5Mutex7TryLockEv");
  __tsan_mutex_pre_lock(this, __tsan_mutex_try_lock);
  const bool locked = real(this);
  __tsan_mutex_post_lock(
      this, __tsan_mutex_try_lock | (locked ? 0 : __tsan_mutex_try_lock_failed), 0);
  return locked;
}

void Mutex::ReaderLock() {
  static const auto real = Real<void (*)(Mutex*)>("5Mutex10ReaderLockEv");
  __tsan_mutex_pre_lock(this, __tsan_mutex_read_lock);
  real(this);
  __tsan_mutex_post_lock(this, __tsan_mutex_read_lock, 0);
}

void Mutex::ReaderUnlock() {
  static const auto real = Real<void (*)(Mutex*)>("5Mutex12ReaderUnlockEv");
  __tsan_mutex_pre_unlock(this, __tsan_mutex_read_lock);
  real(this);
  __tsan_mutex_post_unlock(this, __tsan_mutex_read_lock);
}

bool Mutex::ReaderTryLock() {
  static const auto real = Real<bool (*)(Mutex*)>("5Mutex13ReaderTryLockEv");
  const unsigned flags = __tsan_mutex_read_lock | __tsan_mutex_try_lock;
  __tsan_mutex_pre_lock(this, flags);
  const bool locked = real(this);
  __tsan_mutex_post_lock(this, flags | (locked ? 0 : __tsan_mutex_try_lock_failed), 0);
  return locked;
}

Mutex::~Mutex() {
  static const auto real = Real<void (*)(Mutex*)>("5MutexD1Ev");
  __tsan_mutex_destroy(this, 0);
  real(this);
}

void Mutex::LockWhen(const Condition& cond) {
  static const auto real = Real<void (*)(Mutex*, const Condition&)>("5Mutex8LockWhenERKNS0_9ConditionE");
  __tsan_mutex_pre_lock(this, 0);
  real(this, cond);
  __tsan_mutex_post_lock(this, 0, 0);
}

bool Mutex::LockWhenWithTimeout(const Condition& cond, Duration timeout) {
  static const auto real = Real<bool (*)(Mutex*, const Condition&, Duration)>(
      "5Mutex19LockWhenWithTimeoutERKNS0_9ConditionENS0_8DurationE");
  __tsan_mutex_pre_lock(this, 0);
  const bool met = real(this, cond, timeout);
  __tsan_mutex_post_lock(this, 0, 0);
  return met;
}

bool Mutex::LockWhenWithDeadline(const Condition& cond, Time deadline) {
  static const auto real = Real<bool (*)(Mutex*, const Condition&, Time)>(
      "5Mutex20LockWhenWithDeadlineERKNS0_9ConditionENS0_4TimeE");
  __tsan_mutex_pre_lock(this, 0);
  const bool met = real(this, cond, deadline);
  __tsan_mutex_post_lock(this, 0, 0);
  return met;
}

void Mutex::Await(const Condition& cond) {
  static const auto real = Real<void (*)(Mutex*, const Condition&)>("5Mutex5AwaitERKNS0_9ConditionE");
  BeforeWait(this);
  real(this, cond);
  AfterWait(this);
}

bool Mutex::AwaitWithTimeout(const Condition& cond, Duration timeout) {
  static const auto real = Real<bool (*)(Mutex*, const Condition&, Duration)>(
      "5Mutex16AwaitWithTimeoutERKNS0_9ConditionENS0_8DurationE");
  BeforeWait(this);
  const bool met = real(this, cond, timeout);
  AfterWait(this);
  return met;
}

bool Mutex::AwaitWithDeadline(const Condition& cond, Time deadline) {
  static const auto real = Real<bool (*)(Mutex*, const Condition&, Time)>(
      "5Mutex17AwaitWithDeadlineERKNS0_9ConditionENS0_4TimeE");
  BeforeWait(this);
  const bool met = real(this, cond, deadline);
  AfterWait(this);
  return met;
}

void CondVar::Wait(Mutex* mu) {
  static const auto real = Real<void (*)(CondVar*, Mutex*)>("7CondVar4WaitEPNS0_5MutexE");
  BeforeWait(mu);
  real(this, mu);
  AfterWait(mu);
}

bool CondVar::WaitWithTimeout(Mutex* mu, Duration timeout) {
  static const auto real = Real<bool (*)(CondVar*, Mutex*, Duration)>(
      "7CondVar15WaitWithTimeoutEPNS0_5MutexENS0_8DurationE");
  BeforeWait(mu);
  const bool timed_out = real(this, mu, timeout);
  AfterWait(mu);
  return timed_out;
}

bool CondVar::WaitWithDeadline(Mutex* mu, Time deadline) {
  static const auto real = Real<bool (*)(CondVar*, Mutex*, Time)>(
      "7CondVar16WaitWithDeadlineEPNS0_5MutexENS0_4TimeE");
  BeforeWait(mu);
  const bool timed_out = real(this, mu, deadline);
  AfterWait(mu);
  return timed_out;
}

ABSL_NAMESPACE_END
}  // namespace absl
