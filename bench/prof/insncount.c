// SPDX-License-Identifier: GPL-2.0
/*
 * A QEMU TCG plugin for `make bench` profiles: counts the guest instructions executed between
 * two `cpuid` instructions with eax = 0x56505200 + n (a marker the guest's profile loop
 * executes), per translation block, and writes "vaddr instructions executions" lines (highest
 * first) to the file given as out=PATH when the closing marker runs. Single-threaded TCG only
 * (no locking). Declares the few plugin API calls it uses itself, as Debian ships no header.
 *
 * With tlb=1 it also models QEMU's software TLB for data accesses (a direct-mapped table per
 * MMU index, indexed by virtual page, with an 8-entry victim table, as accel/tcg/cputlb.c),
 * at 256, 1024 and 4096 entries since QEMU resizes it at run time, and counts refills (a miss
 * in both tables: QEMU walks the guest page tables) per operation and, for 1024, per block.
 * MMU index: user code; kernel code on a kernel address; kernel code on a user address (the
 * user copies, under SMAP's stac). TLB flushes are not modelled.
 *
 * With tail=1 every `hlt` on vCPU 0 (the idle loop, so the end of a sleep of the profiled
 * task, which runs there) forgets what was counted so far: the table then holds what ran after
 * the operations' last sleep, which is what an operation's time on the virtual clock adds to
 * its sleeps (run one operation: PROF_N=1).
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
typedef void (*mem_cb)(unsigned int vcpu, uint32_t info, uint64_t vaddr, void *udata);
enum qemu_plugin_mem_rw { QEMU_PLUGIN_MEM_R = 1, QEMU_PLUGIN_MEM_W, QEMU_PLUGIN_MEM_RW };
void qemu_plugin_register_vcpu_mem_cb(struct qemu_plugin_insn *, mem_cb, enum qemu_plugin_cb_flags,
				      enum qemu_plugin_mem_rw, void *);
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
struct slot { uint64_t vaddr, insns, execs, lookups, fills, jc_misses; };
#define SLOTS (1u << 20)
static struct slot *table;
static bool on;
static uint64_t total;
static const char *out = "insncount.txt";
/* tail=1: the slots counted since the last hlt, to forget at the next one. */
static bool tail_mode;
static struct slot **touched;
static size_t n_touched, cap_touched;
static int round_no;
/* The block executed last: entering the next one is a jump-cache lookup in QEMU
 * (helper_lookup_tb_ptr) rather than a chained jump when the last one ended in an indirect
 * branch (ret, jmp/call through a register or memory) or the next one starts on another guest
 * page (QEMU chains direct jumps only within a page). */
static const struct tb *prev;
static uint64_t lookups;
/* QEMU's per-vCPU jump cache (accel/tcg/tb-jmp-cache.h: 4096 entries, hashed by pc so one
 * page's blocks share a 64-entry window): a lookup whose pc is not in its slot falls back to
 * the global hash table (tb_htable_lookup), several times slower. Modelled per vCPU 0 only
 * (the bench pins its work there), ignoring the flags QEMU compares besides the pc. */
#define JC_BITS 12
static uint64_t jc[1u << JC_BITS];
static uint64_t jc_misses;

static unsigned jc_hash(uint64_t pc)
{
	uint64_t tmp = pc ^ (pc >> 6);
	return ((tmp >> 6) & 0xfc0) | (tmp & 0x3f);
}
/* The software TLB model (tlb=1). */
static bool model_tlb;
#define TLB_SIZES 3
#define VTLB 8
static const unsigned tlb_bits[TLB_SIZES] = { 8, 10, 12 };
struct tlb {
	uint64_t *main;		/* page + 1 per entry, 0 = empty */
	uint64_t victim[VTLB];
	unsigned vnext;
};
static struct tlb tlbs[TLB_SIZES][3];
static uint64_t fills[TLB_SIZES];
static struct slot *cur;

/* One access to `page` through `t`: true when QEMU would refill (walk the page tables). */
static bool tlb_access(struct tlb *t, unsigned bits, uint64_t page)
{
	uint64_t *e = &t->main[page & ((1u << bits) - 1)];
	if (*e == page + 1)
		return false;
	for (unsigned i = 0; i < VTLB; i++) {
		if (t->victim[i] == page + 1) {
			t->victim[i] = *e;
			*e = page + 1;
			return false;
		}
	}
	if (*e)
		t->victim[t->vnext++ % VTLB] = *e;
	*e = page + 1;
	return true;
}

static void mem_access(unsigned int vcpu, uint32_t info, uint64_t vaddr, void *udata)
{
	(void)vcpu; (void)info;
	uint64_t pc = (uint64_t)(uintptr_t)udata;
	const uint64_t kernel = 0xffff800000000000ull;
	int idx = pc < kernel ? 0 : vaddr >= kernel ? 1 : 2;
	for (int s = 0; s < TLB_SIZES; s++) {
		if (tlb_access(&tlbs[s][idx], tlb_bits[s], vaddr >> 12) && on) {
			fills[s]++;
			if (s == 1 && cur)
				cur->fills++;
		}
	}
}

static void tb_exec(unsigned int vcpu, void *udata)
{
	struct tb *t = udata;
	bool lookup = prev && (prev->indirect || (prev->vaddr >> 12) != (t->vaddr >> 12));
	bool jc_miss = false;
	prev = t;
	if (lookup && vcpu == 0) {
		unsigned h = jc_hash(t->vaddr);
		jc_miss = jc[h] != t->vaddr;
		jc[h] = t->vaddr;
	}
	if (!on)
		return;
	cur = NULL;
	total += t->n;
	lookups += lookup;
	jc_misses += jc_miss;
	uint32_t h = (uint32_t)((t->vaddr * 0x9e3779b97f4a7c15ull) >> 44);
	for (;; h = (h + 1) & (SLOTS - 1)) {
		struct slot *s = &table[h];
		if (s->vaddr == t->vaddr || s->vaddr == 0) {
			if (tail_mode && s->insns == 0) {
				if (n_touched == cap_touched) {
					cap_touched = cap_touched ? 2 * cap_touched : 4096;
					touched = realloc(touched, cap_touched * sizeof(*touched));
				}
				touched[n_touched++] = s;
			}
			s->vaddr = t->vaddr;
			s->insns += t->n;
			s->execs++;
			s->lookups += lookup;
			s->jc_misses += jc_miss;
			cur = s;
			return;
		}
	}
}

/* tail=1: a hlt on vCPU 0 forgets the counts so far (the slots keep their place in the
 * table, so open addressing still finds the others). */
static void halt(unsigned int vcpu, void *udata)
{
	(void)udata;
	if (!on || vcpu != 0)
		return;
	for (size_t i = 0; i < n_touched; i++) {
		struct slot *s = touched[i];
		s->insns = s->execs = s->lookups = s->fills = s->jc_misses = 0;
	}
	n_touched = 0;
	total = lookups = jc_misses = 0;
	memset(fills, 0, sizeof(fills));
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
		n_touched = 0;
		lookups = 0;
		jc_misses = 0;
		memset(fills, 0, sizeof(fills));
		cur = NULL;
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
	n_touched = 0;
	fprintf(f, "total %llu %llu %llu", (unsigned long long)total, (unsigned long long)lookups,
		(unsigned long long)jc_misses);
	if (model_tlb)
		for (int i = 0; i < TLB_SIZES; i++)
			fprintf(f, " %llu", (unsigned long long)fills[i]);
	fprintf(f, "\n");
	for (size_t i = 0; i < SLOTS && table[i].insns; i++)
		fprintf(f, "%llx %llu %llu %llu %llu %llu\n", (unsigned long long)table[i].vaddr,
			(unsigned long long)table[i].insns, (unsigned long long)table[i].execs,
			(unsigned long long)table[i].lookups, (unsigned long long)table[i].fills,
			(unsigned long long)table[i].jc_misses);
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
		if (model_tlb)
			qemu_plugin_register_vcpu_mem_cb(insn, mem_access, QEMU_PLUGIN_CB_NO_REGS,
							 QEMU_PLUGIN_MEM_RW,
							 (void *)(uintptr_t)qemu_plugin_insn_vaddr(insn));
		uint8_t b[8] = { 0 };
		size_t len = qemu_plugin_insn_data(insn, b, sizeof(b));
		if (tail_mode && len == 1 && b[0] == 0xf4)
			qemu_plugin_register_vcpu_insn_exec_cb(insn, halt, QEMU_PLUGIN_CB_NO_REGS, NULL);
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
		else if (!strcmp(argv[i], "tlb=1"))
			model_tlb = true;
		else if (!strcmp(argv[i], "tail=1"))
			tail_mode = true;
	table = calloc(SLOTS, sizeof(*table));
	if (!table)
		return 1;
	for (int s = 0; s < TLB_SIZES; s++)
		for (int m = 0; m < 3; m++)
			if (!(tlbs[s][m].main = calloc(1u << tlb_bits[s], sizeof(uint64_t))))
				return 1;
	qemu_plugin_register_vcpu_tb_trans_cb(id, tb_trans);
	return 0;
}
