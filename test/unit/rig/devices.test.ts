import { describe, expect, it } from 'vitest';
import { deviceArgs, diskCount, nicSubnet, soundCount } from '../../vm/rig/devices.js';
import { soundCapturePaths } from '../../vm/rig/guest.js';

describe('QEMU device presets', () => {
  it('gives each NIC its own restricted user network with loopback forwards only', () => {
    const args = deviceArgs({ devices: ['e1000', 'pcnet'], forwards: [{ guestPort: 8080, hostPort: 40000 }] });
    expect(args).toEqual([
      '-netdev', 'user,id=n0,restrict=on,guestfwd=tcp:10.0.2.100:8080-cmd:socat STDIO TCP:127.0.0.1:40000',
      '-device', 'e1000,netdev=n0,romfile=',
      '-netdev', 'user,id=n1,restrict=on,guestfwd=tcp:10.0.2.100:8080-cmd:socat STDIO TCP:127.0.0.1:40000',
      '-device', 'pcnet,netdev=n1,romfile=',
    ]);
  });

  it('puts every NIC on one hub with one restricted user network when asked', () => {
    const args = deviceArgs({ devices: ['e1000', 'pcnet'], forwards: [{ guestPort: 8080, hostPort: 40000 }], nicHub: true });
    expect(args).toEqual([
      '-netdev', 'user,id=n0,restrict=on,guestfwd=tcp:10.0.2.100:8080-cmd:socat STDIO TCP:127.0.0.1:40000',
      '-netdev', 'hubport,id=hub0,hubid=0,netdev=n0',
      '-netdev', 'hubport,id=hub1,hubid=0',
      '-device', 'e1000,netdev=hub1,romfile=',
      '-netdev', 'hubport,id=hub2,hubid=0',
      '-device', 'pcnet,netdev=hub2,romfile=',
    ]);
  });

  it('puts each NIC on a subnet of its own when asked, its forwards at .100 there', () => {
    const args = deviceArgs({ devices: ['e1000', 'es1370', 'pcnet'], forwards: [{ guestPort: 8080, hostPort: 40000 }], nicSubnets: true });
    expect(args).toEqual([
      '-netdev', 'user,id=n0,restrict=on,net=10.0.2.0/24,host=10.0.2.2,dns=10.0.2.3,dhcpstart=10.0.2.15,guestfwd=tcp:10.0.2.100:8080-cmd:socat STDIO TCP:127.0.0.1:40000',
      '-device', 'e1000,netdev=n0,romfile=',
      '-audiodev', 'none,id=snd0', '-device', 'ES1370,audiodev=snd0',
      '-netdev', 'user,id=n1,restrict=on,net=10.0.3.0/24,host=10.0.3.2,dns=10.0.3.3,dhcpstart=10.0.3.15,guestfwd=tcp:10.0.3.100:8080-cmd:socat STDIO TCP:127.0.0.1:40000',
      '-device', 'pcnet,netdev=n1,romfile=',
    ]);
    expect(nicSubnet(0)).toEqual({ prefix: '10.0.2', gateway: '10.0.2.2', forwardAddr: '10.0.2.100' });
    expect(nicSubnet(2)).toEqual({ prefix: '10.0.4', gateway: '10.0.4.2', forwardAddr: '10.0.4.100' });
    expect(() => deviceArgs({ devices: ['e1000'], nicHub: true, nicSubnets: true })).toThrow('nicSubnets');
  });

  it('shares one silent audio backend between sound cards', () => {
    expect(deviceArgs({ devices: ['es1370', 'ac97'] })).toEqual([
      '-audiodev', 'none,id=snd0', '-device', 'ES1370,audiodev=snd0', '-device', 'AC97,audiodev=snd0',
    ]);
  });

  it('puts the HDA controller on the silent backend through its duplex codec', () => {
    expect(deviceArgs({ devices: ['hda'] })).toEqual([
      '-audiodev', 'none,id=snd0', '-device', 'intel-hda,id=hda0', '-device', 'hda-duplex,bus=hda0.0,audiodev=snd0',
    ]);
  });

  it('gives each sound card its own wav recording when capture is asked for', () => {
    const files = ['/tmp/c/snd0.wav', '/tmp/c/snd1.wav', '/tmp/c/snd2.wav'];
    expect(deviceArgs({ devices: ['es1370', 'e1000', 'ac97', 'hda'], soundCaptures: files })).toEqual([
      '-audiodev', 'wav,id=snd0,path=/tmp/c/snd0.wav', '-device', 'ES1370,audiodev=snd0',
      '-netdev', 'user,id=n0,restrict=on', '-device', 'e1000,netdev=n0,romfile=',
      '-audiodev', 'wav,id=snd1,path=/tmp/c/snd1.wav', '-device', 'AC97,audiodev=snd1',
      '-audiodev', 'wav,id=snd2,path=/tmp/c/snd2.wav', '-device', 'intel-hda,id=hda2', '-device', 'hda-duplex,bus=hda2.0,audiodev=snd2',
    ]);
    expect(deviceArgs({ devices: ['ac97'], soundCaptures: ['/tmp/x.wav'], soundCaptureRate: 48000 })).toEqual([
      '-audiodev', 'wav,id=snd0,path=/tmp/x.wav,out.frequency=48000', '-device', 'AC97,audiodev=snd0',
    ]);
    expect(deviceArgs({ devices: ['es1370', 'es1370'], soundCaptures: ['/tmp/x.wav', null] })).toEqual([
      '-audiodev', 'wav,id=snd0,path=/tmp/x.wav', '-device', 'ES1370,audiodev=snd0',
      '-audiodev', 'none,id=snd1', '-device', 'ES1370,audiodev=snd1',
    ]);
    expect(soundCount(['es1370', 'e1000', 'ac97', 'hda', 'ahci'])).toBe(3);
    expect(soundCapturePaths('/tmp/c', ['es1370', 'e1000', 'ac97', 'hda'])).toEqual(files);
    expect(() => deviceArgs({ devices: ['es1370', 'ac97'], soundCaptures: ['/tmp/a.wav'] })).toThrow('sound card 1 has no wav file');
    expect(() => deviceArgs({ devices: ['es1370'], soundCaptures: ['/tmp/a,b.wav'] })).toThrow('comma');
    expect(() => deviceArgs({ devices: ['es1370'], soundCaptures: ['/tmp/a.wav'], soundCaptureRate: 44.1 })).toThrow('not a sample rate');
  });

  it('puts each scratch disk on its own controller, with a serial that names it', () => {
    expect(deviceArgs({ devices: ['piix-ide', 'ahci', 'virtio-blk'], diskImages: ['/tmp/a.img', '/tmp/b.img', '/tmp/c.img'] })).toEqual([
      '-drive', 'file=/tmp/a.img,if=none,id=disk0,format=raw', '-device', 'ide-hd,drive=disk0,bus=ide.0,serial=shadowd-disk0',
      '-drive', 'file=/tmp/b.img,if=none,id=disk1,format=raw', '-device', 'ich9-ahci,id=ahci1', '-device', 'ide-hd,drive=disk1,bus=ahci1.0,serial=shadowd-disk1',
      '-drive', 'file=/tmp/c.img,if=none,id=disk2,format=raw', '-device', 'virtio-blk-pci,drive=disk2,serial=shadowd-disk2',
    ]);
    expect(diskCount(['e1000', 'ahci', 'es1370', 'virtio-blk'])).toBe(2);
  });

  it('refuses bad ports and unusable disk paths', () => {
    expect(() => deviceArgs({ devices: ['e1000'], forwards: [{ guestPort: 0, hostPort: 1 }] })).toThrow('not a TCP port');
    expect(() => deviceArgs({ devices: ['e1000'], forwards: [{ guestPort: 80, hostPort: 70000 }] })).toThrow('not a TCP port');
    expect(() => deviceArgs({ devices: ['piix-ide'] })).toThrow('needs a scratch disk');
    expect(() => deviceArgs({ devices: ['ahci', 'virtio-blk'], diskImages: ['/tmp/a.img'] })).toThrow('disk 1');
    expect(() => deviceArgs({ devices: ['piix-ide'], diskImages: ['/tmp/a,b'] })).toThrow('comma');
    expect(() => deviceArgs({ devices: ['ahci', 'piix-ide'], diskImages: ['/tmp/a.img', '/tmp/b.img'] })).toThrow('before the other disks');
  });
});
