// SPDX-License-Identifier: GPL-2.0
/*
 * A QEMU TCG plugin for `make bench` profiles: counts the guest instructions executed between
 * two `cpuid` instructions with eax = 0x56505200 + n (a marker the guest's profile loop
 * executes), per translation block, and writes "vaddr instructions executions" lines (highest
 * first) to the file given as out=PATH when the closing marker runs. Single-threaded TCG only
 * (no locking). Declares the few plugin API calls it uses itself, as Debian ships no header.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef uint64_t qemu_plugin_id_t;
typedef struct {
	const char *target_name;
	struct { int min, cur; } version;
	bool system_emulation;
	union { struct { int smp_vcpus, max_vcpus; } system; };
} qemu_info_t;
struct qemu_plugin_tb;
struct qemu_plugin_insn;
enum qemu_plugin_cb_flags { QEMU_PLUGIN_CB_NO_REGS, QEMU_PLUGIN_CB_R_REGS, QEMU_PLUGIN_CB_RW_REGS };
typedef void (*tb_trans_cb)(qemu_plugin_id_t, struct qemu_plugin_tb *);
typedef void (*udata_cb)(unsigned int vcpu, void *udata);
void qemu_plugin_register_vcpu_tb_trans_cb(qemu_plugin_id_t, tb_trans_cb);
void qemu_plugin_register_vcpu_tb_exec_cb(struct qemu_plugin_tb *, udata_cb, enum qemu_plugin_cb_flags, void *);
void qemu_plugin_register_vcpu_insn_exec_cb(struct qemu_plugin_insn *, udata_cb, enum qemu_plugin_cb_flags, void *);
size_t qemu_plugin_tb_n_insns(const struct qemu_plugin_tb *);
uint64_t qemu_plugin_tb_vaddr(const struct qemu_plugin_tb *);
struct qemu_plugin_insn *qemu_plugin_tb_get_insn(const struct qemu_plugin_tb *, size_t);
size_t qemu_plugin_insn_data(const struct qemu_plugin_insn *, void *dest, size_t len);
uint64_t qemu_plugin_insn_vaddr(const struct qemu_plugin_insn *);

__attribute__((visibility("default"))) int qemu_plugin_version = 2;

struct tb { uint64_t vaddr; uint64_t n; bool indirect; };
struct slot { uint64_t vaddr, insns, execs, lookups; };
#define SLOTS (1u << 20)
static struct slot *table;
static bool on;
static uint64_t total;
static const char *out = "insncount.txt";
static int round_no;
/* The block executed last: entering the next one is a jump-cache lookup in QEMU
 * (helper_lookup_tb_ptr) rather than a chained jump when the last one ended in an indirect
 * branch (ret, jmp/call through a register or memory) or the next one starts on another guest
 * page (QEMU chains direct jumps only within a page). */
static const struct tb *prev;
static uint64_t lookups;

static void tb_exec(unsigned int vcpu, void *udata)
{
	struct tb *t = udata;
	(void)vcpu;
	bool lookup = prev && (prev->indirect || (prev->vaddr >> 12) != (t->vaddr >> 12));
	prev = t;
	if (!on)
		return;
	total += t->n;
	lookups += lookup;
	uint32_t h = (uint32_t)((t->vaddr * 0x9e3779b97f4a7c15ull) >> 44);
	for (;; h = (h + 1) & (SLOTS - 1)) {
		struct slot *s = &table[h];
		if (s->vaddr == t->vaddr || s->vaddr == 0) {
			s->vaddr = t->vaddr;
			s->insns += t->n;
			s->execs++;
			s->lookups += lookup;
			return;
		}
	}
}

static int by_insns(const void *a, const void *b)
{
	const struct slot *x = a, *y = b;
	return x->insns < y->insns ? 1 : x->insns > y->insns ? -1 : 0;
}

/* The marker: toggles counting; on the way out, dumps the table. */
static void marker(unsigned int vcpu, void *udata)
{
	(void)vcpu; (void)udata;
	if (!on) {
		memset(table, 0, sizeof(*table) * SLOTS);
		total = 0;
		lookups = 0;
		on = true;
		return;
	}
	on = false;
	char path[4096];
	snprintf(path, sizeof(path), "%s.%d", out, round_no++);
	FILE *f = fopen(path, "w");
	if (!f)
		return;
	qsort(table, SLOTS, sizeof(*table), by_insns);
	fprintf(f, "total %llu %llu\n", (unsigned long long)total, (unsigned long long)lookups);
	for (size_t i = 0; i < SLOTS && table[i].vaddr; i++)
		fprintf(f, "%llx %llu %llu %llu\n", (unsigned long long)table[i].vaddr,
			(unsigned long long)table[i].insns, (unsigned long long)table[i].execs,
			(unsigned long long)table[i].lookups);
	fclose(f);
}

static void tb_trans(qemu_plugin_id_t id, struct qemu_plugin_tb *tb)
{
	(void)id;
	size_t n = qemu_plugin_tb_n_insns(tb);
	struct tb *t = malloc(sizeof(*t));
	t->vaddr = qemu_plugin_tb_vaddr(tb);
	t->n = n;
	t->indirect = false;
	if (n) {
		/* The last instruction: ret (C3, C2 imm16, F3 C3) or FF /2 /3 /4 /5 (call or jmp
		 * through a register or memory), after any REX or segment prefix. */
		uint8_t b[16] = { 0 };
		size_t len = qemu_plugin_insn_data(qemu_plugin_tb_get_insn(tb, n - 1), b, sizeof(b));
		size_t i = 0;
		while (i < len && (b[i] == 0xf3 || b[i] == 0x2e || b[i] == 0x3e || (b[i] & 0xf0) == 0x40))
			i++;
		if (i < len && (b[i] == 0xc3 || b[i] == 0xc2 || b[i] == 0xcf))
			t->indirect = true;
		if (i + 1 < len && b[i] == 0xff) {
			unsigned reg = (b[i + 1] >> 3) & 7;
			t->indirect = reg >= 2 && reg <= 5;
		}
	}
	qemu_plugin_register_vcpu_tb_exec_cb(tb, tb_exec, QEMU_PLUGIN_CB_NO_REGS, t);
	for (size_t i = 0; i < n; i++) {
		struct qemu_plugin_insn *insn = qemu_plugin_tb_get_insn(tb, i);
		uint8_t b[8] = { 0 };
		size_t len = qemu_plugin_insn_data(insn, b, sizeof(b));
		/* mov eax, imm32 (B8 xx xx 50 56) right before cpuid (0F A2) in the same block is
		 * checked by the guest side; here any cpuid preceded by that mov counts. */
		if (len == 5 && b[0] == 0xb8 && b[3] == 0x50 && b[4] == 0x56 && i + 1 < n) {
			uint8_t c[2] = { 0 };
			if (qemu_plugin_insn_data(qemu_plugin_tb_get_insn(tb, i + 1), c, 2) == 2 &&
			    c[0] == 0x0f && c[1] == 0xa2)
				qemu_plugin_register_vcpu_insn_exec_cb(qemu_plugin_tb_get_insn(tb, i + 1),
								       marker, QEMU_PLUGIN_CB_NO_REGS, NULL);
		}
	}
}

__attribute__((visibility("default")))
int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t *info, int argc, char **argv)
{
	(void)info;
	for (int i = 0; i < argc; i++)
		if (!strncmp(argv[i], "out=", 4))
			out = argv[i] + 4;
	table = calloc(SLOTS, sizeof(*table));
	if (!table)
		return 1;
	qemu_plugin_register_vcpu_tb_trans_cb(id, tb_trans);
	return 0;
}
