#pragma once
// Data loading: IDX and Fashion-MNIST, PNG folders, .npy and safetensors image tensors, and the
// shuffling batch iterator; the validation slice held out of a training split; pixel statistics.
#include "progdiff/data/batch_iterator.hpp"
#include "progdiff/data/fashion_mnist.hpp"
#include "progdiff/data/idx.hpp"
#include "progdiff/data/image_dataset.hpp"
#include "progdiff/data/image_folder.hpp"
#include "progdiff/data/npy.hpp"
#include "progdiff/data/pixel_statistics.hpp"
#include "progdiff/data/tensor_file.hpp"
#include "progdiff/data/validation_split.hpp"
