/* Capability names and --cap-add/--cap-drop: what the daemon accepts
 * decides what a container may do, so names resolve exactly and an unknown
 * one is refused with its name. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <linux/capability.h>

#include "grpc/status.h"
#include "runtime/caps.h"

static void names_resolve(void **state) {
  (void)state;
  assert_int_equal(caps_from_name("NET_ADMIN"), CAP_NET_ADMIN);
  assert_int_equal(caps_from_name("CAP_NET_ADMIN"), CAP_NET_ADMIN);
  assert_int_equal(caps_from_name("cap_sys_admin"), CAP_SYS_ADMIN);
  assert_int_equal(caps_from_name("chown"), CAP_CHOWN);
  assert_int_equal(caps_from_name("CHECKPOINT_RESTORE"), CAP_CHECKPOINT_RESTORE);
  assert_int_equal(caps_from_name("BPF"), CAP_BPF);
  assert_int_equal(caps_from_name("NET_ADMINX"), -1);
  assert_int_equal(caps_from_name("CAP_"), -1);
  assert_int_equal(caps_from_name(""), -1);
  assert_int_equal(caps_from_name("ALL"), -1); /* a keyword of the lists, not a cap */
  /* Every number has the kernel's name back. */
  for (int c = 0; c <= CAP_LAST_CAP; c++)
    assert_int_equal(caps_from_name(caps_name(c)), c);
  assert_null(caps_name(CAP_LAST_CAP + 1));
  assert_null(caps_name(-1));
}

static void default_set_is_dockers(void **state) {
  (void)state;
  static const int dflt[] = {CAP_CHOWN, CAP_DAC_OVERRIDE, CAP_FOWNER, CAP_FSETID, CAP_KILL,
                             CAP_SETGID, CAP_SETUID, CAP_SETPCAP, CAP_NET_BIND_SERVICE,
                             CAP_NET_RAW, CAP_SYS_CHROOT, CAP_MKNOD, CAP_AUDIT_WRITE,
                             CAP_SETFCAP};
  uint64_t want = 0;
  for (size_t i = 0; i < sizeof dflt / sizeof dflt[0]; i++)
    want |= CAPS_BIT(dflt[i]);
  assert_true(want == CAPS_DEFAULT);
  uint64_t got = 0;
  struct qerr err = QERR_INIT;
  assert_int_equal(caps_resolve(NULL, 0, NULL, 0, &got, &err), 0);
  assert_true(got == CAPS_DEFAULT);
  assert_true(CAPS_ALL == (CAPS_BIT(CAP_LAST_CAP + 1) - 1));
}

static void add_and_drop(void **state) {
  (void)state;
  struct qerr err = QERR_INIT;
  uint64_t got;
  char *add[] = {"NET_ADMIN", "cap_sys_ptrace"};
  char *drop[] = {"CHOWN", "CAP_NET_RAW"};
  assert_int_equal(caps_resolve(add, 2, drop, 2, &got, &err), 0);
  uint64_t want = (CAPS_DEFAULT & ~(CAPS_BIT(CAP_CHOWN) | CAPS_BIT(CAP_NET_RAW))) |
                  CAPS_BIT(CAP_NET_ADMIN) | CAPS_BIT(CAP_SYS_PTRACE);
  assert_true(got == want);
  /* Drop ALL, add one back: only that one. */
  char *all[] = {"ALL"};
  char *one[] = {"KILL"};
  assert_int_equal(caps_resolve(one, 1, all, 1, &got, &err), 0);
  assert_true(got == CAPS_BIT(CAP_KILL));
  /* A name in both lists is kept (drops apply first). */
  assert_int_equal(caps_resolve(one, 1, one, 1, &got, &err), 0);
  assert_true(got == CAPS_DEFAULT);
  assert_int_equal(caps_resolve(all, 1, NULL, 0, &got, &err), 0);
  assert_true(got == CAPS_ALL);
}

static void unknown_names_are_refused(void **state) {
  (void)state;
  struct qerr err = QERR_INIT;
  uint64_t got = 42;
  char *bad[] = {"NET_ADMIN", "SYS_WIZARD"};
  assert_int_equal(caps_resolve(bad, 2, NULL, 0, &got, &err), -EINVAL);
  assert_int_equal(err.status, GRPC_INVALID_ARGUMENT);
  assert_non_null(strstr(err.msg, "\"SYS_WIZARD\""));
  assert_true(got == 42); /* untouched */
  struct qerr err2 = QERR_INIT;
  char *bad2[] = {"CAP_"};
  assert_int_equal(caps_resolve(NULL, 0, bad2, 1, &got, &err2), -EINVAL);
  assert_non_null(strstr(err2.msg, "\"CAP_\""));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(names_resolve),
      cmocka_unit_test(default_set_is_dockers),
      cmocka_unit_test(add_and_drop),
      cmocka_unit_test(unknown_names_are_refused),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
