// SPDX-License-Identifier: GPL-2.0
/*
 * vfio_pci_rs C shim: static C tables (pci_driver, vfio_device_ops, vm_operations_struct) that
 * point at the Rust entry points, and one-line wrappers for static inlines and macros.
 *
 * The pci_driver lives here because the 7.3 Rust PCI abstraction cannot set driver_managed_dma
 * (without it vfio cannot claim DMA ownership of the group) nor an override-only id table.
 */
#include <linux/debugfs.h>
#include <linux/iommu.h>
#include <linux/io.h>
#include <linux/io-64-nonatomic-lo-hi.h>
#include <linux/ioport.h>
#include <linux/mm.h>
#include <linux/module.h>
#include <linux/msi.h>
#include <linux/pci.h>
#include <linux/rwsem.h>
#include <linux/seq_file.h>
#include <linux/slab.h>
#include <linux/vfio.h>
#include "shim.h"

static const struct vfio_device_ops vpr_vfio_ops = {
	.name = VPR_DRIVER_NAME,
	.release = vpr_release,
	.open_device = vpr_open_device,
	.close_device = vpr_close_device,
	.ioctl = vpr_ioctl,
	.device_feature = vpr_device_feature,
	.match = vpr_match,
	.match_token_uuid = vpr_match_token_uuid,
	.get_region_info_caps = vpr_get_region_info_caps,
	.read = vpr_read,
	.write = vpr_write,
	.mmap = vpr_mmap,
	.request = vpr_request,
	.bind_iommufd = vfio_iommufd_physical_bind,
	.unbind_iommufd = vfio_iommufd_physical_unbind,
	.attach_ioas = vfio_iommufd_physical_attach_ioas,
	.detach_ioas = vfio_iommufd_physical_detach_ioas,
	.pasid_attach_ioas = vfio_iommufd_physical_pasid_attach_ioas,
	.pasid_detach_ioas = vfio_iommufd_physical_pasid_detach_ioas,
};

/* The handlers emit the vpr_fault trace event around the Rust vpr_huge_fault (ffi/trace.c). */
static const struct vm_operations_struct vpr_mmap_ops = {
	.fault = vpr_fault_traced,
#ifdef CONFIG_ARCH_SUPPORTS_HUGE_PFNMAP
	.huge_fault = vpr_huge_fault_traced,
#endif
};

static int vpr_pci_probe(struct pci_dev *pdev, const struct pci_device_id *id)
{
	struct vfio_device *vdev = vpr_probe(pdev);

	if (IS_ERR(vdev))
		return vpr_refused(&pdev->dev, "bind", PTR_ERR(vdev));
	pci_set_drvdata(pdev, vdev);
	return 0;
}

static void vpr_pci_remove(struct pci_dev *pdev)
{
	vpr_remove(pci_get_drvdata(pdev));
}

/*
 * The driver binds through driver_override or dynamic ids (new_id, ids=) only. vfio_pci_rs has
 * no static id at all; the drop-in has upstream vfio-pci's one override-only entry (it matches
 * nothing by itself, as an empty table) for the module alias it gives, vfio_pci:v*d*sv*sd*bc*sc*i*,
 * which libvirt reads to find the VFIO driver of a device.
 */
static const struct pci_device_id vpr_pci_ids[] = {
#ifdef VPR_DROPIN
	{ PCI_DRIVER_OVERRIDE_DEVICE_VFIO(PCI_ANY_ID, PCI_ANY_ID) },
#endif
	{}
};
#ifdef VPR_DROPIN
MODULE_DEVICE_TABLE(pci, vpr_pci_ids);
#endif

/* AER: relay the error to the user's ERR eventfd; the user decides how to recover. */
static pci_ers_result_t vpr_pci_error_detected(struct pci_dev *pdev, pci_channel_state_t state)
{
	vpr_error_detected(pci_get_drvdata(pdev));
	return PCI_ERS_RESULT_CAN_RECOVER;
}

/*
 * A reset by someone else (sysfs reset, a bus reset of a neighbour): zap the mappings and hold
 * off BAR access until it is done, as for the driver's own resets. Called with the device lock
 * held, so the drvdata is set (probe is over) and stays (remove waits).
 */
static void vpr_pci_reset_prepare(struct pci_dev *pdev)
{
	vpr_reset_prepare(pci_get_drvdata(pdev));
}

static void vpr_pci_reset_done(struct pci_dev *pdev)
{
	vpr_reset_done(pci_get_drvdata(pdev));
}

static const struct pci_error_handlers vpr_pci_err_handlers = {
	.error_detected = vpr_pci_error_detected,
	.reset_prepare = vpr_pci_reset_prepare,
	.reset_done = vpr_pci_reset_done,
};

/* "vfio_pci_rs", or "vfio-pci" in the drop-in build (Kbuild sets VPR_DRIVER_NAME). */
static struct pci_driver vpr_pci_driver = {
	.name = VPR_DRIVER_NAME,
	.id_table = vpr_pci_ids,
	.probe = vpr_pci_probe,
	.remove = vpr_pci_remove,
	.driver_managed_dma = true,
	.err_handler = &vpr_pci_err_handlers,
};

int vpr_register_driver(void)
{
	return pci_register_driver(&vpr_pci_driver);
}

void vpr_unregister_driver(void)
{
	pci_unregister_driver(&vpr_pci_driver);
}

struct vfio_device *vpr_alloc_device(size_t size, struct device *dev)
{
	return _vfio_alloc_device(size, dev, &vpr_vfio_ops);
}

void vpr_put_device(struct vfio_device *vdev)
{
	vfio_put_device(vdev);
}

void vpr_vma_setup(struct vm_area_struct *vma, void *private_data)
{
	vma->vm_private_data = private_data;
	vma->vm_page_prot = pgprot_noncached(vma->vm_page_prot);
	vma->vm_page_prot = pgprot_decrypted(vma->vm_page_prot);
	vm_flags_set(vma, VM_ALLOW_ANY_UNCACHED | VM_IO | VM_PFNMAP | VM_DONTEXPAND | VM_DONTDUMP);
	vma->vm_ops = &vpr_mmap_ops;
}

int vpr_spin_trylock_irqsave(spinlock_t *lock, unsigned long *flags)
{
	return spin_trylock_irqsave(lock, *flags);
}

void vpr_init_rwsem(struct rw_semaphore *sem)
{
	/* One lock class for every device's memory lock, as upstream's memory_lock. */
	init_rwsem(sem);
}

u64 vpr_ioread64(void __iomem *addr)
{
	return ioread64(addr);
}

void vpr_iowrite64(u64 val, void __iomem *addr)
{
	iowrite64(val, addr);
}

unsigned long vpr_resource_flags(struct pci_dev *pdev, int bar)
{
	return pci_resource_flags(pdev, bar);
}

u8 vpr_hdr_type(struct pci_dev *pdev)
{
	return pdev->hdr_type;
}

bool vpr_non_mappable_bars(struct pci_dev *pdev)
{
	return pdev->non_mappable_bars;
}

struct resource *vpr_reserve_subpage(struct pci_dev *pdev, int bar)
{
	struct resource *res = &pdev->resource[bar];
	struct resource *dummy = kzalloc(sizeof(*dummy), GFP_KERNEL_ACCOUNT);

	if (!dummy)
		return NULL;
	dummy->name = "vfio sub-page reserved";
	dummy->start = res->end + 1;
	dummy->end = res->start + PAGE_SIZE - 1;
	dummy->flags = res->flags;
	if (request_resource(res->parent, dummy)) {
		kfree(dummy);
		return NULL;
	}
	return dummy;
}

void vpr_release_subpage(struct resource *res)
{
	release_resource(res);
	kfree(res);
}

void __iomem *vpr_rom_map(struct pci_dev *pdev, size_t *rom_size, size_t *bar_size)
{
	void __iomem *io;

	if (pci_resource_start(pdev, PCI_ROM_RESOURCE)) {
		io = pci_map_rom(pdev, rom_size);
		*bar_size = pci_resource_len(pdev, PCI_ROM_RESOURCE);
		return io;
	}
	if (pdev->rom && pdev->romlen) {
		*rom_size = pdev->romlen;
		*bar_size = roundup_pow_of_two(pdev->romlen);
		return ioremap(pdev->rom, pdev->romlen);
	}
	return NULL;
}

void vpr_rom_unmap(struct pci_dev *pdev, void __iomem *io)
{
	if (pci_resource_start(pdev, PCI_ROM_RESOURCE))
		pci_unmap_rom(pdev, io);
	else
		iounmap(io);
}

u8 vpr_msix_cap(struct pci_dev *pdev)
{
	return pdev->msix_cap;
}

u16 vpr_cfg_size(struct pci_dev *pdev)
{
	return pdev->cfg_size;
}

bool vpr_intx_mask_supported(struct pci_dev *pdev)
{
	return pci_intx_mask_supported(pdev);
}

struct pci_dev *vpr_upstream_bridge(struct pci_dev *pdev)
{
	return pci_upstream_bridge(pdev);
}

struct pci_dev *vpr_physfn(struct pci_dev *pdev)
{
	return pci_physfn(pdev);
}

u8 vpr_pm_cap(struct pci_dev *pdev)
{
	return pdev->pm_cap;
}

u8 vpr_msi_cap(struct pci_dev *pdev)
{
	return pdev->msi_cap;
}

bool vpr_has_intx_line(struct pci_dev *pdev)
{
	return pdev->irq && pdev->irq != IRQ_NOTCONNECTED;
}

bool vpr_is_virtfn(struct pci_dev *pdev)
{
	return pdev->is_virtfn;
}

const char *vpr_pci_name(struct pci_dev *pdev)
{
	return pci_name(pdev);
}

bool vpr_is_physfn(struct pci_dev *pdev)
{
	return pdev->is_physfn;
}

u64 vpr_rom_region_len(struct pci_dev *pdev)
{
	if (pci_resource_start(pdev, PCI_ROM_RESOURCE))
		return pci_resource_len(pdev, PCI_ROM_RESOURCE);
	if (pdev->rom && pdev->romlen)
		return roundup_pow_of_two(pdev->romlen);
	return 0;
}

/*
 * debugfs: /sys/kernel/debug/<module>/<BDF>/faults, the fault-path counters (vfio_pci_rs, or
 * vfio_pci for the drop-in: named after the module, so both builds can be loaded at once).
 */
static struct dentry *vpr_debugfs_root;

static const char *const vpr_counter_names[VPR_NUM_COUNTERS] = {
	"pte", "pmd", "pud", "fallback", "zap", "sigbus", "around",
};

static int vpr_faults_show(struct seq_file *s, void *unused)
{
	u64 vals[VPR_NUM_COUNTERS];
	int i;

	vpr_read_counters(s->private, vals);
	for (i = 0; i < VPR_NUM_COUNTERS; i++)
		seq_printf(s, "%s %llu\n", vpr_counter_names[i], vals[i]);
	return 0;
}
DEFINE_SHOW_ATTRIBUTE(vpr_faults);

void vpr_debugfs_init(void)
{
	vpr_debugfs_root = debugfs_create_dir(KBUILD_MODNAME, NULL);
}

void vpr_debugfs_exit(void)
{
	debugfs_remove_recursive(vpr_debugfs_root);
}

struct dentry *vpr_debugfs_add(struct pci_dev *pdev, struct vfio_device *vdev)
{
	struct dentry *dir = debugfs_create_dir(pci_name(pdev), vpr_debugfs_root);

	debugfs_create_file("faults", 0444, dir, vdev, &vpr_faults_fops);
	return dir;
}

void vpr_debugfs_remove(struct dentry *dir)
{
	debugfs_remove_recursive(dir);
}

u16 vpr_pcie_flags(struct pci_dev *pdev)
{
	return pdev->pcie_flags_reg;
}

bool vpr_no_command_memory(struct pci_dev *pdev)
{
	return pdev->no_command_memory;
}

u64 vpr_shadow_rom_len(struct pci_dev *pdev)
{
	return pdev->rom ? pdev->romlen : 0;
}

void vpr_msi_refresh_msg(unsigned int irq)
{
	struct msi_msg msg;

	get_cached_msi_msg(irq, &msg);
	pci_write_msi_msg(irq, &msg);
}

/*
 * Device sets. Devices that one slot or bus reset affects share a VFIO device set, as upstream
 * (vfio_pci_core_register_device). The set id is the slot or bus pointer plus one: the VFIO
 * core keys sets by an opaque id, and an id of our own keeps vfio_pci_rs devices out of
 * vfio-pci's sets, whose code treats every member as a vfio_pci_core_device (and ours as ours).
 */
int vpr_assign_dev_set(struct vfio_device *vdev, struct pci_dev *pdev)
{
	void *id;

	/* A set of its own: the VFIO core assigns one at registration. */
	if (pci_is_root_bus(pdev->bus) || pdev->is_virtfn)
		return 0;
	id = !pci_probe_reset_slot(pdev->slot) ? (void *)pdev->slot : (void *)pdev->bus;
	return vfio_assign_device_set(vdev, (u8 *)id + 1);
}

bool vpr_cdev_opened(struct vfio_device *vdev)
{
	return vfio_device_cdev_opened(vdev);
}

/*
 * Static inlines without CONFIG_IOMMUFD (NULL, VFIO_PCI_DEVID_NOT_OWNED), exported functions
 * with it: through here, the crate compiles against both.
 */
struct iommufd_ctx *vpr_iommufd_device_ictx(struct vfio_device *vdev)
{
	return vfio_iommufd_device_ictx(vdev);
}

int vpr_iommufd_get_dev_id(struct vfio_device *vdev, struct iommufd_ctx *ictx)
{
	return vfio_iommufd_get_dev_id(vdev, ictx);
}

void vpr_dev_set_lock(struct vfio_device *vdev)
{
	mutex_lock(&vdev->dev_set->lock);
}

void vpr_dev_set_unlock(struct vfio_device *vdev)
{
	mutex_unlock(&vdev->dev_set->lock);
}

unsigned int vpr_dev_set_open_count(struct vfio_device *vdev)
{
	return vfio_device_set_open_count(vdev->dev_set);
}

/* The members of vdev's set (at most max into out), in list order; returns how many there are. */
int vpr_dev_set_devices(struct vfio_device *vdev, struct vfio_device **out, int max)
{
	struct vfio_device *cur;
	int n = 0;

	lockdep_assert_held(&vdev->dev_set->lock);
	list_for_each_entry(cur, &vdev->dev_set->device_list, dev_set_list) {
		if (n < max)
			out[n] = cur;
		n++;
	}
	return n;
}

struct vfio_device *vpr_dev_set_find(struct vfio_device *vdev, struct pci_dev *pdev)
{
	return vfio_find_device_in_devset(vdev->dev_set, &pdev->dev);
}

/* Which reset the topology allows, in upstream's order: 1 slot, 0 bus, -ENODEV neither. */
int vpr_probe_slot_or_bus_reset(struct pci_dev *pdev)
{
	if (!pci_probe_reset_slot(pdev->slot))
		return 1;
	if (!pci_probe_reset_bus(pdev->bus))
		return 0;
	return -ENODEV;
}

int vpr_reset_slot_or_bus(struct pci_dev *pdev)
{
	return pci_reset_bus(pdev);
}

/* Upstream's vfio_pci_for_each_slot_or_bus: fn on every device the reset of pdev affects. */
struct vpr_walk {
	int (*fn)(struct pci_dev *pdev, void *data);
	void *data;
	struct pci_slot *slot;
	int ret;
};

static bool vpr_below_slot(struct pci_dev *pdev, struct pci_slot *slot)
{
	for (; pdev; pdev = pdev->bus->self)
		if (pdev->bus == slot->bus)
			return pdev->slot == slot;
	return false;
}

static int vpr_walk_one(struct pci_dev *pdev, void *data)
{
	struct vpr_walk *walk = data;

	if (!walk->slot || vpr_below_slot(pdev, walk->slot))
		walk->ret = walk->fn(pdev, walk->data);
	return walk->ret;
}

int vpr_for_each_affected(struct pci_dev *pdev, bool slot,
			  int (*fn)(struct pci_dev *pdev, void *data), void *data)
{
	struct vpr_walk walk = {
		.fn = fn, .data = data, .slot = slot ? pdev->slot : NULL, .ret = 0,
	};

	pci_walk_bus(pdev->bus, vpr_walk_one, &walk);
	return walk.ret;
}

void vpr_pci_location(struct pci_dev *pdev, u16 *segment, u8 *bus, u8 *devfn)
{
	*segment = pci_domain_nr(pdev->bus);
	*bus = pdev->bus->number;
	*devfn = pdev->devfn;
}

/* The IOMMU group number, or -EPERM for a device without one (it cannot be isolated). */
int vpr_iommu_group_id(struct pci_dev *pdev)
{
	struct iommu_group *group = iommu_group_get(&pdev->dev);
	int id;

	if (!group)
		return -EPERM;
	id = iommu_group_id(group);
	iommu_group_put(group);
	return id;
}

/*
 * Module parameters: upstream vfio-pci's names, types, permissions and descriptions
 * (drivers/vfio/pci/vfio_pci.c), read by params.rs. They are declared here, not in module!,
 * because the 7.3 Rust macro has no string parameters and keeps its parameters out of sysfs
 * (perm 0), where upstream's are visible and nointxmask, disable_idle_d3 and enable_sriov are
 * writable (the first two are latched per device at probe, as upstream does).
 * ids is not __initdata as upstream's: the Rust module init that reads it is not __init.
 */
static char ids[1024];
module_param_string(ids, ids, sizeof(ids), 0);
MODULE_PARM_DESC(ids, "Initial PCI IDs to add to the " VPR_DRIVER_NAME " driver, format is \"vendor:device[:subvendor[:subdevice[:class[:class_mask]]]]\" and multiple comma separated entries can be specified");

static bool nointxmask;
module_param_named(nointxmask, nointxmask, bool, 0644);
MODULE_PARM_DESC(nointxmask,
		 "Disable support for PCI 2.3 style INTx masking (INTx then needs an exclusive line, masked at the interrupt controller).  If this resolves problems for specific devices, report lspci -vvvxxx to linux-pci@vger.kernel.org so the device can be fixed automatically via the broken_intx_masking flag.");

/*
 * The drop-in has exactly the parameters vfio-pci has on the same kernel: disable_vga only with
 * CONFIG_VFIO_PCI_VGA and enable_sriov only with CONFIG_PCI_IOV, as upstream declares them.
 * vfio_pci_rs accepts both everywhere (so vfio-pci command lines work).
 */
static bool disable_vga;
#if !defined(VPR_DROPIN) || defined(CONFIG_VFIO_PCI_VGA)
module_param(disable_vga, bool, 0444);
MODULE_PARM_DESC(disable_vga, "Accepted for compatibility with vfio-pci, no effect: vfio_pci_rs has no VGA region (it never exposes legacy VGA resources)");
#endif

static bool disable_idle_d3;
module_param(disable_idle_d3, bool, 0644);
MODULE_PARM_DESC(disable_idle_d3,
		 "Disable using the PCI D3 low power state for idle, unused devices");

static bool enable_sriov;
#if !defined(VPR_DROPIN) || defined(CONFIG_PCI_IOV)
module_param(enable_sriov, bool, 0644);
MODULE_PARM_DESC(enable_sriov, "Accepted for compatibility with vfio-pci, no effect: vfio_pci_rs has no SR-IOV support (writing sriov_numvfs of a bound PF fails with ENOENT, as with vfio-pci's default enable_sriov=0)");
#endif

static bool disable_denylist;
module_param(disable_denylist, bool, 0444);
MODULE_PARM_DESC(disable_denylist, "Disable use of device denylist. Disabling the denylist allows binding to devices with known errata that may lead to exploitable stability or security issues when accessed by untrusted users.");

/* The VFIO core and its IOMMU backend, loaded first where they are modules. */
MODULE_SOFTDEP("pre: vfio vfio_iommu_type1");

const char *vpr_param_ids(void)
{
	return ids;
}

bool vpr_param_nointxmask(void)
{
	return READ_ONCE(nointxmask);
}

bool vpr_param_disable_vga(void)
{
	return disable_vga;
}

bool vpr_param_disable_idle_d3(void)
{
	return READ_ONCE(disable_idle_d3);
}

bool vpr_param_enable_sriov(void)
{
	return READ_ONCE(enable_sriov);
}

bool vpr_param_disable_denylist(void)
{
	return disable_denylist;
}

int vpr_add_dynid(u32 vendor, u32 device, u32 subvendor, u32 subdevice, u32 class,
		  u32 class_mask)
{
	return pci_add_dynid(&vpr_pci_driver, vendor, device, subvendor, subdevice, class,
			     class_mask, 0);
}
