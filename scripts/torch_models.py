"""Models and photos shared by the fixture and demo scripts (run with /usr/bin/python3)."""
import torch
import torchvision
from skimage import data as samples
from torchvision import transforms

# Fixed so that fixtures and the demo model are the same on every machine.
SEED = 20261126

# torchvision's ImageNet evaluation transform, as the article's users would apply it.
PREPROCESS = transforms.Compose([
    transforms.ToPILImage(),
    transforms.Resize(256),
    transforms.CenterCrop(224),
    transforms.ToTensor(),
    transforms.Normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225]),
])


def photos():
    """Public-domain sample photos that ship with scikit-image, as RGB uint8 HWC."""
    images = [samples.chelsea(), samples.astronaut(), samples.coffee(), samples.rocket()]
    return [img[..., :3] for img in images]


def seeded_model(arch):
    """A torchvision architecture (`resnet18`, `mobilenet_v2`, `densenet121`, ...) with seeded
    weights and BatchNorm statistics calibrated on real photos (so activations have the scale of a
    trained network), in eval mode."""
    torch.manual_seed(SEED)
    model = getattr(torchvision.models, arch)(weights=None)
    # Calibrate BatchNorm on real pixels: cumulative averages over a few passes, then evaluate.
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.momentum = None
    model.train()
    augment = transforms.Compose([transforms.ToPILImage(), transforms.RandomResizedCrop(224), transforms.ToTensor(),
                                  transforms.Normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225])])
    with torch.no_grad():
        for _ in range(4):
            model(torch.stack([augment(img) for img in photos() for _ in range(2)]))
    return model.eval()


def resnet18_seeded():
    """torchvision's ResNet-18, seeded and calibrated (see seeded_model)."""
    return seeded_model('resnet18')
