/* SPDX-License-Identifier: GPL-2.0 */
/*
 * vfio_pci_rs C shim: the few static inlines, macros and C tables Rust cannot reach directly.
 * Everything here is a one-line wrapper or a constant table; driver logic stays in Rust.
 */
#ifndef VFIO_PCI_RS_SHIM_H
#define VFIO_PCI_RS_SHIM_H

#include <linux/types.h>
#include <linux/mm_types.h>

struct pci_dev;
struct device;
struct resource;
struct rw_semaphore;
struct vfio_device;
struct vfio_region_info;
struct vfio_info_cap;

/* Rust entry points, called from the C tables in shim.c (defined in ffi/vfio.rs, ffi/mm.rs). */
struct vfio_device *vpr_probe(struct pci_dev *pdev);
void vpr_remove(struct vfio_device *vdev);
void vpr_release(struct vfio_device *vdev);
int vpr_open_device(struct vfio_device *vdev);
void vpr_close_device(struct vfio_device *vdev);
ssize_t vpr_read(struct vfio_device *vdev, char __user *buf, size_t count, loff_t *ppos);
ssize_t vpr_write(struct vfio_device *vdev, const char __user *buf, size_t count, loff_t *ppos);
long vpr_ioctl(struct vfio_device *vdev, unsigned int cmd, unsigned long arg);
int vpr_device_feature(struct vfio_device *vdev, u32 flags, void __user *arg, size_t argsz);
int vpr_match(struct vfio_device *vdev, char *buf);
int vpr_match_token_uuid(struct vfio_device *vdev, const uuid_t *uuid);
int vpr_get_region_info_caps(struct vfio_device *vdev, struct vfio_region_info *info,
			     struct vfio_info_cap *caps);
int vpr_mmap(struct vfio_device *vdev, struct vm_area_struct *vma);
void vpr_request(struct vfio_device *vdev, unsigned int count);
vm_fault_t vpr_page_fault(struct vm_fault *vmf);
vm_fault_t vpr_huge_fault(struct vm_fault *vmf, unsigned int order);

/* Fault counters in debugfs: the Rust side fills VPR_NUM_COUNTERS values. */
#define VPR_NUM_COUNTERS 7
void vpr_read_counters(struct vfio_device *vdev, u64 *vals);
struct dentry;
void vpr_debugfs_init(void);
void vpr_debugfs_exit(void);
struct dentry *vpr_debugfs_add(struct pci_dev *pdev, struct vfio_device *vdev);
void vpr_debugfs_remove(struct dentry *dir);

/* C helpers called from Rust. */
int vpr_register_driver(void);
void vpr_unregister_driver(void);
struct vfio_device *vpr_alloc_device(size_t size, struct device *dev);
void vpr_put_device(struct vfio_device *vdev);
void vpr_vma_setup(struct vm_area_struct *vma, void *private_data);
void vpr_init_rwsem(struct rw_semaphore *sem);
int vpr_spin_trylock_irqsave(spinlock_t *lock, unsigned long *flags);
u64 vpr_ioread64(void __iomem *addr);
void vpr_iowrite64(u64 val, void __iomem *addr);
unsigned long vpr_resource_flags(struct pci_dev *pdev, int bar);
u8 vpr_hdr_type(struct pci_dev *pdev);
bool vpr_non_mappable_bars(struct pci_dev *pdev);
struct resource *vpr_reserve_subpage(struct pci_dev *pdev, int bar);
void vpr_release_subpage(struct resource *res);
void __iomem *vpr_rom_map(struct pci_dev *pdev, size_t *rom_size, size_t *bar_size);
void vpr_rom_unmap(struct pci_dev *pdev, void __iomem *io);
u8 vpr_msix_cap(struct pci_dev *pdev);
u8 vpr_msi_cap(struct pci_dev *pdev);
u8 vpr_pm_cap(struct pci_dev *pdev);
bool vpr_has_intx_line(struct pci_dev *pdev);
bool vpr_is_virtfn(struct pci_dev *pdev);
const char *vpr_pci_name(struct pci_dev *pdev);
bool vpr_is_physfn(struct pci_dev *pdev);
u16 vpr_pcie_flags(struct pci_dev *pdev);
bool vpr_no_command_memory(struct pci_dev *pdev);
u64 vpr_shadow_rom_len(struct pci_dev *pdev);
u64 vpr_rom_region_len(struct pci_dev *pdev);
u16 vpr_cfg_size(struct pci_dev *pdev);
bool vpr_intx_mask_supported(struct pci_dev *pdev);
struct pci_dev *vpr_upstream_bridge(struct pci_dev *pdev);
struct pci_dev *vpr_physfn(struct pci_dev *pdev);

/* Interrupts (ffi/irq.rs): MSI message refresh; AER error_detected, defined in Rust. */
void vpr_msi_refresh_msg(unsigned int irq);
void vpr_error_detected(struct vfio_device *vdev);
/* Resets by someone else (ffi/vfio.rs): pci_error_handlers.reset_prepare / reset_done. */
void vpr_reset_prepare(struct vfio_device *vdev);
void vpr_reset_done(struct vfio_device *vdev);

/* Module parameters (params.rs, ffi/param.rs) and dynamic ids for ids=. */
const char *vpr_param_ids(void);
bool vpr_param_nointxmask(void);
bool vpr_param_disable_vga(void);
bool vpr_param_disable_idle_d3(void);
bool vpr_param_enable_sriov(void);
bool vpr_param_disable_denylist(void);
int vpr_add_dynid(u32 vendor, u32 device, u32 subvendor, u32 subdevice, u32 class,
		  u32 class_mask);

/* Observability (ffi/trace.c): traced fault handlers, zap, refusals (dev_dbg + trace event). */
vm_fault_t vpr_fault_traced(struct vm_fault *vmf);
vm_fault_t vpr_huge_fault_traced(struct vm_fault *vmf, unsigned int order);
void vpr_zap_mapping(struct vfio_device *vdev, u64 start, u64 len);
int vpr_refused(struct device *dev, const char *op, int err);
int vpr_mmap_refused(struct vfio_device *vdev, unsigned long pgoff, unsigned long len,
		     bool shared, int err);
/* Device sets and hot reset (ffi/devset.rs). */
struct file;
int vpr_assign_dev_set(struct vfio_device *vdev, struct pci_dev *pdev);
bool vpr_cdev_opened(struct vfio_device *vdev);
struct iommufd_ctx;
struct iommufd_ctx *vpr_iommufd_device_ictx(struct vfio_device *vdev);
int vpr_iommufd_get_dev_id(struct vfio_device *vdev, struct iommufd_ctx *ictx);
void vpr_dev_set_lock(struct vfio_device *vdev);
void vpr_dev_set_unlock(struct vfio_device *vdev);
unsigned int vpr_dev_set_open_count(struct vfio_device *vdev);
int vpr_dev_set_devices(struct vfio_device *vdev, struct vfio_device **out, int max);
struct vfio_device *vpr_dev_set_find(struct vfio_device *vdev, struct pci_dev *pdev);
int vpr_probe_slot_or_bus_reset(struct pci_dev *pdev);
int vpr_reset_slot_or_bus(struct pci_dev *pdev);
int vpr_for_each_affected(struct pci_dev *pdev, bool slot,
			  int (*fn)(struct pci_dev *pdev, void *data), void *data);
void vpr_pci_location(struct pci_dev *pdev, u16 *segment, u8 *bus, u8 *devfn);
int vpr_iommu_group_id(struct pci_dev *pdev);

#endif
